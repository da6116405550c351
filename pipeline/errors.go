package pipeline

import "errors"

// permanentError marks an error caused by the input itself: retrying the
// same record can never succeed, so the runtime dead-letters it at once.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent (bad input). It returns nil for nil.
// Stages wrap decode failures, unsupported or corrupt files and the like;
// anything not marked is treated as transient and retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// unavailableError marks an error caused by a dependency being out of
// reach (the database is down, the blob store does not answer), not by
// the record: retrying the record later will succeed.
type unavailableError struct{ err error }

func (e unavailableError) Error() string { return e.err.Error() }
func (e unavailableError) Unwrap() error { return e.err }

// Unavailable marks err as a dependency outage. It returns nil for nil.
// The runtime retries such a record for as long as the outage lasts
// (backoff capped at Retry.Max) instead of dead-lettering it after
// Retry.Attempts: a database restart must delay documents, never drop
// them. Nothing is committed meanwhile, so a crash during the outage
// redoes the batch.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return unavailableError{err}
}

// IsUnavailable reports whether err, or any error it wraps, was marked
// with Unavailable.
func IsUnavailable(err error) bool {
	var u unavailableError
	return errors.As(err, &u)
}
