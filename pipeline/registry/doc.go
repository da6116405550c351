// Package registry is prismflow's embedded schema registry: the subset of
// the Confluent Schema Registry REST API that franz-go's sr client,
// Confluent's serializers and tools such as kcat or curl use, served when
// no external registry is configured (by default on localhost:8081).
//
// # API
//
//	GET    /subjects                          GET /schemas/ids/{id}
//	GET    /subjects/{s}/versions             GET /schemas/ids/{id}/schema
//	POST   /subjects/{s}/versions  (register) GET /schemas/ids/{id}/versions
//	GET    /subjects/{s}/versions/{v|latest}  GET /schemas/ids/{id}/subjects
//	GET    /subjects/{s}/versions/{v}/schema  GET /schemas/types
//	POST   /subjects/{s}           (lookup)   GET|PUT /config, GET|PUT|DELETE /config/{s}
//	DELETE /subjects/{s}           (soft)     POST /compatibility/subjects/{s}/versions[/{v}]
//
// Answers use the content type application/vnd.schemaregistry.v1+json and
// errors Confluent's form {"error_code":40401,"message":"..."} (40401
// subject, 40402 version, 40403 schema not found, 409 incompatible, 42201
// invalid schema, 50001 store failure). Only AVRO schemas without
// references are accepted; deletion is soft only.
//
// # Guarantees
//
// Registering the same schema text (insignificant whitespace aside) under
// the same subject returns the existing id; the same schema under another
// subject gets the id it already has, so an id always means one schema.
// A new version must pass the subject's compatibility level (default
// BACKWARD; NONE, BACKWARD, FORWARD, FULL and their _TRANSITIVE forms),
// checked with the Avro resolution rules of schemas.CanRead.
//
// # Storage and why it is shaped so
//
// The state lives in a compacted, single-partition Kafka topic (_schemas,
// created if missing) in Confluent's record shapes: key
// {"keytype":"SCHEMA","subject":...,"version":...,"magic":1}, value
// {"subject","version","id","schema","deleted"}; CONFIG records for
// compatibility levels. A write is answered only after its record is
// acknowledged and applied, and New replays the topic before returning, so
// ids and versions survive restarts and no extra database is needed.
//
// Several prismflow processes may share one broker and each run a
// registry. There is no leader: the log is the only source of truth and
// every process folds it with the same deterministic rule, so all agree. A
// writer catches up to the end of the log, picks the next version and id,
// produces, and reads until its own record is applied; a record whose
// version or id another writer took first is ignored by every process, and
// its writer retries with fresh numbers (after re-writing the winner's
// value under the shared key so compaction cannot drop the winner). A read
// that finds nothing catches up with the log once before answering "not
// found", so a schema registered by a peer is visible at once.
package registry
