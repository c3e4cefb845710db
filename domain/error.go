package domain

import (
	"errors"
	"fmt"
)

// Error codes. They are stable strings: the HTTP adapter maps each to a status exactly once.
const (
	EINVALID      = "invalid"       // the input is malformed or breaks a rule
	ECONFLICT     = "conflict"      // the state changed underneath, or the thing already exists
	ENOTFOUND     = "not_found"     // the thing does not exist (or belongs to another tenant)
	EUNAUTHORIZED = "unauthorized"  // no valid credential
	EFORBIDDEN    = "forbidden"     // a valid credential without the right
	ETOOLARGE     = "too_large"     // the input is over a size limit
	EUNSUPPORTED  = "unsupported"   // a media type or format that is not handled
	ERATELIMIT    = "rate_limited"  // too many requests
	EUNAVAILABLE  = "unavailable"   // a dependency is down or not ready; retrying may succeed
	EINTERNAL     = "internal"      // anything else: a bug or an unexpected failure
	ELIMIT        = "limit_reached" // a plan limit is reached
)

// Error is Metachat's one error type: a code from the list above and a message safe to show the caller.
// Fields optionally names input fields that were wrong (for validation errors).
type Error struct {
	Code    string
	Message string
	Fields  []FieldError
	// Err is an underlying cause, kept for logs; it is never shown to a caller.
	Err error
}

// FieldError names one input field and what is wrong with it.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("metachat error: code=%s message=%s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("metachat error: code=%s message=%s", e.Code, e.Message)
}

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EINVALID error naming the fields that are wrong.
func Invalid(message string, fields ...FieldError) *Error {
	return &Error{Code: EINVALID, Message: message, Fields: fields}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for nil, and EINTERNAL for any
// other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of the first *Error in err's chain, or a generic text
// for any other error, so internal details never leak.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error has occurred."
}

// ErrorFields returns the field errors of the first *Error in err's chain.
func ErrorFields(err error) []FieldError {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}
