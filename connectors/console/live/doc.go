// Package live tells the reviewer console, as it happens, which document
// moved to which stage: a Hub reads every pipeline topic from its end with
// a consumer of its own, turns each event into an Update, and fans the
// updates out to subscribers, one tenant each (or all), over channels or a
// Server-Sent Events stream (ServeSSE).
//
// Why a direct consumer and not a consumer group: every console process
// must see every event (each serves its own browsers), and nothing is to
// be committed or replayed; a group would split the partitions between
// processes and keep offsets nobody needs. The hub starts at the last
// stable offset of each partition, reads read_committed (an aborted
// transaction's events never reach a browser), and never looks back: a
// browser that connects late loads the current state from PostgreSQL and
// follows the stream from there.
//
// Status. An event says a stage finished with a document, so its Update
// has Status processing, except:
//   - a dead letter (the dead-letter topic) is StatusFailed;
//   - the final event (form rendered) is StatusDone only once the
//     persisted row says so: the persist stage writes it after the event
//     is on the topic, and a browser that reloads on "done" must find the
//     row done. With a status lookup (WithStatusLookup) the hub first
//     sends processing, then asks the store with growing pauses for a
//     while and sends done (or failed) when the row has it. Without a
//     lookup the final event is sent as done at once.
//
// Delivery is best effort by design. A subscriber's channel is bounded;
// when it is full the update is dropped for that subscriber alone, so a
// slow browser never holds back the hub or the others. ServeSSE tells its
// browser that it missed updates with a "resync" event, so the page can
// reload its rows instead of showing a stale status.
package live
