// Package schemas holds prismflow's Avro schemas (the embedded *.avsc
// files, one per event of package events) and the Codec that puts events
// on Kafka in the Confluent wire format: a zero byte, the 4-byte big-endian
// schema id, then the Avro binary body.
//
// # Guarantees
//
//   - Encode registers an event's embedded schema under "<topic>-value" on
//     first use and caches the id; the registry decides compatibility, so
//     an incompatible schema change fails at registration (RegisterAll at
//     start), never silently on the wire.
//   - Decode always reads with the writer's schema (fetched by id, cached)
//     and resolves the data to the reader's schema by the Avro rules:
//     fields the reader added take their defaults (also inside nested
//     records and array items), fields the reader dropped are skipped,
//     numbers promote, unknown enum symbols take the enum default. So old
//     records stay readable after a schema evolves, and old stages can read
//     records from newer ones.
//   - Every failure caused by the bytes themselves wraps ErrBadRecord
//     (permanent: dead-letter it); an unreachable registry does not
//     (transient: retry).
//
// # Why it is shaped so
//
// goavro gives correct Avro binary encoding but no schema resolution and no
// struct mapping, and its compiled codecs expose no schema structure. The
// package therefore keeps a small parsed model of each schema (Type), used
// for resolution and compatibility (CanRead, which the embedded registry
// shares), and compiles, once per Go type, a conversion plan between the
// event struct and goavro's native values, following the `avro:"..."`
// tags: time.Time ↔ long/timestamp-millis, string types ↔ enums, []byte ↔
// bytes, map[string]string ↔ map, nested structs ↔ records, slices ↔
// arrays, pointers ↔ ["null", T] unions. Resolution is skipped when the
// writer schema is the reader's own, which is the common case on the hot
// path. A zero time.Time is written as the epoch and read back as zero; an
// empty enum value is written as the enum's default.
package schemas
