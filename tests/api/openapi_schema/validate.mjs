// Validates an OpenAPI document against the official OpenAPI 3.1 JSON Schema
// (bundled by @seriousme/openapi-schema-validator), every $ref included.
// Registered with ctest as openapi_schema_test (run_openapi_schema_test.sh).
//   usage: node validate.mjs FILE
import { readFile } from "node:fs/promises";
import { Validator } from "@seriousme/openapi-schema-validator";

const file = process.argv[2];
const document = JSON.parse(await readFile(file, "utf8"));
const validator = new Validator();
const result = await validator.validate(document);
if (!result.valid) {
  console.error(`${file} is not a valid OpenAPI document:`);
  console.error(JSON.stringify(result.errors, null, 2));
  process.exit(1);
}
if (validator.version !== "3.1") {
  console.error(`${file} is OpenAPI ${validator.version}, expected 3.1`);
  process.exit(1);
}
// Every $ref must point at something (the schema check alone does not look).
const missing = [];
const walk = (node, at) => {
  if (Array.isArray(node)) {
    node.forEach((item, i) => walk(item, `${at}/${i}`));
  } else if (node && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") {
        let target = document;
        for (const part of value.replace(/^#\//, "").split("/")) {
          target = target?.[part.replaceAll("~1", "/").replaceAll("~0", "~")];
        }
        if (!value.startsWith("#/") || target === undefined) missing.push(`${at}: ${value}`);
      } else {
        walk(value, `${at}/${key}`);
      }
    }
  }
};
walk(document, "");
if (missing.length > 0) {
  console.error(`${file}: $ref to nothing:\n  ${missing.join("\n  ")}`);
  process.exit(1);
}
console.log(`${file}: valid OpenAPI ${validator.version}`);
