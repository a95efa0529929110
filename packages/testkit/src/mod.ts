// Test and benchmark helpers: ONNX models built from TypeScript with known weights (and their reference
// predictions computed in plain JS), MLflow model directories. Never imported by product code.

export * from "./errors.js";
export * from "./mlflow.js";
export * from "./onnx.js";
export * from "./processes.js";
export * from "./tcp-proxy.js";
export * from "./wait.js";
