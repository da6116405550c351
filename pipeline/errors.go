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
