// k8s_validate.js: parse YAML documents and check Kubernetes objects against
// the OpenAPI schemas of the Kubernetes API, offline (npm's kubernetes-models,
// whose validators are the API's OpenAPI schemas compiled by ajv).
//
// stdin: {"texts": [{"name": "deploy/x.yaml", "yaml": "..."}], "validate": true}
// stdout: {"docs": [{"name", "index", "doc", "apiVersion", "kind",
//                    "errors": [...], "unknown": [...]}], "errors": [...]}
//
// "errors" are the schema's complaints (a wrong type, a missing required
// field, a bad enum value or quantity).  "unknown" lists fields the schema
// does not have, which the API server would drop or, with kubectl's default
// --validate=strict, refuse: the OpenAPI schemas do not say
// additionalProperties: false, so ajv alone accepts them.  A field is known
// when the schema checks it: each field in turn is given a value no schema
// accepts (a function), and the field is known if the validator then
// complains at its path.  Free-form maps (labels, data) check their values,
// so their keys count as known.
"use strict";

const yaml = require("js-yaml");

function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    return null;
  }
  // "v1" is kubernetes-models/v1, "apps/v1" kubernetes-models/apps/v1
  if (!/^[a-z0-9.]+(\/[a-z0-9]+)?$/.test(apiVersion)) {
    return null;
  }
  let m;
  try {
    m = require("kubernetes-models/" + apiVersion);
  } catch (e) {
    return null;
  }
  return m[kind] || null;
}

function pointerEscape(k) {
  return String(k).replace(/~/g, "~0").replace(/\//g, "~1");
}

function validationErrors(Model, obj) {
  try {
    new Model(obj).validate();
    return [];
  } catch (e) {
    if (Array.isArray(e.errors)) {
      return e.errors;
    }
    return [{ instancePath: "", message: String(e.message || e) }];
  }
}

function clone(v) {
  return JSON.parse(JSON.stringify(v));
}

// Every (path, key) of an object inside doc: [[["spec"], "replicas"], ...]
function fields(node, path, out) {
  if (Array.isArray(node)) {
    node.forEach((v, i) => fields(v, path.concat([i]), out));
  } else if (node !== null && typeof node === "object") {
    for (const k of Object.keys(node)) {
      out.push([path, k]);
      fields(node[k], path.concat([k]), out);
    }
  }
  return out;
}

function unknownFields(Model, doc) {
  const unknown = [];
  for (const [path, key] of fields(doc, [], [])) {
    if (path.length === 0 && (key === "apiVersion" || key === "kind")) {
      continue;
    }
    const at = "/" + path.concat([key]).map(pointerEscape).join("/");
    // under a field that is itself unknown: that one says it
    if (unknown.some((u) => at.startsWith(u + "/"))) {
      continue;
    }
    const probe = clone(doc);
    let n = probe;
    for (const p of path) {
      n = n[p];
    }
    n[key] = function sentinel() {};
    const errs = validationErrors(Model, probe);
    if (!errs.some((e) => e.instancePath === at || e.instancePath.startsWith(at + "/"))) {
      unknown.push(at);
    }
  }
  return unknown;
}

function main(req) {
  const out = { docs: [], errors: [] };
  for (const t of req.texts) {
    let docs;
    try {
      docs = yaml.loadAll(t.yaml);
    } catch (e) {
      out.errors.push(t.name + ": " + e.message);
      continue;
    }
    docs.forEach((doc, index) => {
      if (doc === null || doc === undefined) {
        return;
      }
      const r = { name: t.name, index, doc, apiVersion: doc.apiVersion, kind: doc.kind };
      if (req.validate) {
        const Model = modelFor(doc.apiVersion, doc.kind);
        if (!Model) {
          r.errors = ["no schema for " + doc.apiVersion + " " + doc.kind];
          r.unknown = [];
        } else {
          r.errors = validationErrors(Model, doc).map(
            (e) => (e.instancePath || "/") + ": " + e.message);
          r.unknown = r.errors.length ? [] : unknownFields(Model, doc);
        }
      }
      out.docs.push(r);
    });
  }
  return out;
}

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => { input += d; });
process.stdin.on("end", () => {
  process.stdout.write(JSON.stringify(main(JSON.parse(input))));
});
