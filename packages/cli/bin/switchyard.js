#!/usr/bin/env node
// The `switchyard` command. The code lives in dist/ (built by `npm start`/`npm test`/`npm run build`).
import { main } from "../dist/main.js";

main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`switchyard: ${err?.message ?? err}`);
    process.exitCode = 1;
  },
);
