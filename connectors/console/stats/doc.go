// Package stats gathers the figures of the reviewer console's pipeline
// page, one row per stage: consumer lag, throughput, records in flight
// and dead letters.
//
// Lag and throughput come from the cluster, not from this process, so
// they cover every instance of a stage wherever it runs: both are read
// from the stage's consumer group commits (kadm) on its input topics.
// Throughput is the growth of the committed offsets between two samples,
// so a Collector keeps the previous one; calls closer together than
// MinInterval reuse the last rate instead of dividing noise by a tiny
// interval. Offsets count transaction markers too, so throughput is
// records plus markers per second: within a few percent at the batch
// sizes the runtime commits. For the same reason a stage at rest shows a
// lag of one per partition written transactionally (the marker after the
// last record is never committed past; see pipeline.LagCollector).
//
// In-flight records are local: they come from the prismflow_stage_in_flight
// gauge of this process's Prometheus registry, so they count the stages
// this process runs.
//
// Dead letters are counted per stage (the prismflow-stage header) by a
// consumer of the dead-letter topic the Collector owns: it reads the topic
// once from the start and then follows it, so a Collect costs no read of
// the topic at all. It starts at the first Collect and stops at Close.
package stats
