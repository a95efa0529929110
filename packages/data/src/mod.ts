// @switchyard/data: the data types a model sees — Frame (named columns) and Tensor — and the casts between
// dtypes. It opens no socket and validates nothing at import time: custom models import it through
// @switchyard/model. The msgpack wire codec is the separate entry `@switchyard/data/codec` (importing it
// registers msgpackr extensions process-wide).
export * from "./frame.js";
export * from "./payload.js";
export * from "./tensor.js";
