// The off-chain values a dApp produces for a PoT order, in JavaScript with viem (docs/FORMATS.md):
// the task spec's canonical JSON, the CIDs `ipfs add --cid-version=1` gives the spec and the data
// sets, the order's modelType and its testCommitment. Python computes the same with pot.sdk.
//
//   node formats.mjs task.json train.npz test.npz 0xCLIENT 0xSALT
//
// task.json holds the spec's fields except train_data_cid (model, init, metric, hints,
// test_samples); prints one JSON object: specJson, specCid, trainCid, testCid, modelType, commitment.
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { encodeAbiParameters, keccak256, sha256, stringToHex } from "viem";

// ---- CIDs: UnixFS as `ipfs add --cid-version=1` builds it (Kubo's defaults) --------------------
// 262,144-byte chunks stored as raw blocks; up to 174 of them under a dag-pb node (balanced
// layout), nodes under nodes until one root. A file of one chunk is a single raw block.
const CHUNK = 262144;
const MAX_LINKS = 174;
const RAW = 0x55;
const DAG_PB = 0x70;

function varint(n) {
  const out = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Uint8Array.from(out);
}

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
};
const bytesField = (no, value) => concat(varint((no << 3) | 2), varint(value.length), value);
const varintField = (no, value) => concat(varint(no << 3), varint(value));

/** CIDv1 bytes: version 1, the codec, a sha2-256 multihash (0x12, 32 bytes). */
const cidBytes = (codec, block) => concat(varint(1), varint(codec), Uint8Array.of(0x12, 32), sha256(block, "bytes"));

/** A dag-pb node over `children`: links first, then UnixFS Data {Type=File, filesize, blocksizes}. */
function node(children) {
  const filesize = children.reduce((n, c) => n + c.filesize, 0);
  const data = concat(varintField(1, 2), varintField(3, filesize), ...children.map((c) => varintField(4, c.filesize)));
  // Name is written even when empty, as go-merkledag does: a different byte is a different CID
  const links = children.map((c) => bytesField(2, concat(bytesField(1, c.cid), bytesField(2, new Uint8Array()),
                                                         varintField(3, c.tsize))));
  const block = concat(...links, bytesField(1, data));
  return { cid: cidBytes(DAG_PB, block), tsize: block.length + children.reduce((n, c) => n + c.tsize, 0), filesize };
}

function base32(bytes) {
  const alphabet = "abcdefghijklmnopqrstuvwxyz234567";
  let out = "", bits = 0, value = 0;
  for (const b of bytes) {
    value = ((value << 8) | b) & 0xfff;
    bits += 8;
    while (bits >= 5) { out += alphabet[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** The CID (text, "b…") of a file's bytes. */
export function cidOf(bytes) {
  const levels = [[]];
  const push = (level, child) => {
    if (levels.length <= level) levels.push([]);
    levels[level].push(child);
    if (levels[level].length === MAX_LINKS) push(level + 1, node(levels[level].splice(0)));
  };
  // an empty file is one empty chunk
  for (let off = 0; off === 0 || off < bytes.length; off += CHUNK) {
    const chunk = bytes.subarray(off, off + CHUNK);
    push(0, { cid: cidBytes(RAW, chunk), tsize: chunk.length, filesize: chunk.length });
  }
  for (let level = 0; ; level++) {
    const top = level === levels.length - 1;
    if (top && levels[level].length === 1) return "b" + base32(levels[level][0].cid);
    if (levels[level].length > 0) push(level + 1, node(levels[level].splice(0)));
  }
}

// ---- the task spec: canonical JSON (sorted keys, no spaces, ASCII), as Python's json.dumps ------
// The three float fields of the hints are written as Python writes floats (0.0, 0.003, 1e-05), so
// the same spec has the same bytes, hence the same CID, in both languages.
const FLOAT_FIELDS = new Set(["lr", "weight_decay", "holdout_fraction"]);

function pythonFloat(x) {
  if (!Number.isFinite(x)) throw new Error(`not a finite number: ${x}`);
  const [digits, exp] = x.toExponential().split("e"); // the shortest round-trip digits, as Python
  const e = Number(exp);
  const mantissa = digits.replace(".", "").replace("-", "");
  const sign = x < 0 ? "-" : "";
  if (e < -4 || e >= 16) return `${sign}${mantissa[0]}${mantissa.length > 1 ? "." + mantissa.slice(1) : ""}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
  if (e < 0) return `${sign}0.${"0".repeat(-e - 1)}${mantissa}`;
  const whole = mantissa.padEnd(e + 1, "0");
  const frac = mantissa.slice(e + 1);
  return `${sign}${whole.slice(0, e + 1)}.${frac || "0"}`;
}

function canonical(value, key) {
  if (Array.isArray(value)) return `[${value.map((v) => canonical(v)).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k], k)}`).join(",")}}`;
  }
  if (typeof value === "number" && FLOAT_FIELDS.has(key)) return pythonFloat(value);
  if (typeof value === "number" && !Number.isInteger(value)) throw new Error(`${key}: only hints may hold fractions`);
  return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

/** The spec file's bytes: version 1, the fields given, and the training set's CID. */
export function taskSpecJson(fields, trainDataCid) {
  return canonical({ version: 1, ...fields, train_data_cid: trainDataCid });
}

// ---- on-chain values ----------------------------------------------------------------------------

/** modelType: the validation function's ASCII name, right-padded with zeros to 32 bytes. */
export const modelTypeOf = (metric) => stringToHex(metric, { size: 32 });

/** testCommitment = keccak256(abi.encode(address client, bytes32 keccak256(bytes(testCid)), bytes32 salt)). */
export function testCommitment(client, testCid, salt) {
  return keccak256(encodeAbiParameters(
    [{ type: "address" }, { type: "bytes32" }, { type: "bytes32" }],
    [client, keccak256(stringToHex(testCid)), salt],
  ));
}

// ---- the command --------------------------------------------------------------------------------

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [taskFile, trainFile, testFile, client, salt] = process.argv.slice(2);
  const fields = JSON.parse(readFileSync(taskFile, "utf8"));
  const trainCid = cidOf(readFileSync(trainFile));
  const testCid = cidOf(readFileSync(testFile));
  const specJson = taskSpecJson(fields, trainCid);
  console.log(JSON.stringify({
    specJson,
    specCid: cidOf(new TextEncoder().encode(specJson)),
    trainCid,
    testCid,
    modelType: modelTypeOf(fields.metric),
    commitment: testCommitment(client, testCid, salt),
  }));
}
