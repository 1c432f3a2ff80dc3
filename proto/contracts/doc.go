// Package contracts has no code of its own. Its tests pin the wire behaviour
// the services rely on: protobuf and JSON round trips of the event messages,
// the JSON form accepted on tx.raw (testdata/*.json, also shown in
// docs/contracts.md), presence of optional fields and NaN as "missing".
package contracts
