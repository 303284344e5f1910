package peba

import (
	"errors"
	"fmt"
)

// Error codes of the application. HTTP adapters map them to status codes in
// one place; internal details never reach a client.
const (
	ECONFLICT     = "conflict"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	EUNAVAILABLE  = "unavailable"
	ETOOLARGE     = "too_large"
)

// Error is an application error with a code and a message that is safe to show
// to a client.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface. It returns the message only, so
// that wrapped chains read naturally; ErrorCode recovers the code.
func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, EINTERNAL
// for any other non-nil error, and "" for nil.
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

// ErrorMessage returns the client-safe message of err.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Sentinel errors that stores return.
var (
	ErrNotFound    = &Error{Code: ENOTFOUND, Message: "not found"}
	ErrConflict    = &Error{Code: ECONFLICT, Message: "already exists"}
	ErrUnavailable = &Error{Code: EUNAVAILABLE, Message: "store unavailable"}
)
