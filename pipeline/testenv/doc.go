// Package testenv starts the real things integration tests need — an
// in-process Kafka broker, the embedded schema registry, a private
// PostgreSQL database — and registers their cleanup with t.Cleanup, so a
// test reads as one line per dependency. Helpers fail the test with a
// clear message (naming the Debian package to install) when a system tool
// is missing, instead of skipping silently.
package testenv
