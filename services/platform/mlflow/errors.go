package mlflow

import (
	"errors"
	"fmt"
	"net/http"
)

// MLflow error codes (the "error_code" field of an error response) that callers commonly
// branch on. The list is not exhaustive: APIError.Code carries whatever the server sent.
const (
	CodeResourceDoesNotExist  = "RESOURCE_DOES_NOT_EXIST"
	CodeResourceAlreadyExists = "RESOURCE_ALREADY_EXISTS"
	CodeInvalidParameterValue = "INVALID_PARAMETER_VALUE"
	CodeInternalError         = "INTERNAL_ERROR"
)

// Sentinel errors for the conditions callers act on. An *APIError matches them with
// errors.Is according to its code and HTTP status.
var (
	// ErrNotFound matches RESOURCE_DOES_NOT_EXIST (experiment, run, model, version,
	// artifact) and an alias that is not set (see Client.GetVersionByAlias).
	ErrNotFound = errors.New("mlflow: resource does not exist")
	// ErrAlreadyExists matches RESOURCE_ALREADY_EXISTS.
	ErrAlreadyExists = errors.New("mlflow: resource already exists")
	// ErrInvalidParameter matches INVALID_PARAMETER_VALUE.
	ErrInvalidParameter = errors.New("mlflow: invalid parameter value")
	// ErrUnavailable means MLflow could not be reached or kept failing: connection
	// errors, the per-call deadline, 5xx and 429 responses, after all retries. A caller
	// that holds a verified local copy may fall back to it on this error (and only on it).
	ErrUnavailable = errors.New("mlflow: unavailable")
	// ErrRegistrationFailed means a model version ended in FAILED_REGISTRATION.
	ErrRegistrationFailed = errors.New("mlflow: model version registration failed")
)

// APIError is a non-2xx response from MLflow.
type APIError struct {
	// Method and Path identify the request, e.g. "GET" "/api/2.0/mlflow/runs/get".
	Method, Path string
	// StatusCode is the HTTP status.
	StatusCode int
	// Code is MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST; empty when the body was
	// not an MLflow error document (for example the 403 of the host-header check).
	Code string
	// Message is MLflow's message, or the start of the body.
	Message string
}

// Error implements error.
func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("mlflow %s %s: %d %s: %s", e.Method, e.Path, e.StatusCode, code, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) and friends work on an *APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Code == CodeResourceDoesNotExist
	case ErrAlreadyExists:
		return e.Code == CodeResourceAlreadyExists
	case ErrInvalidParameter:
		return e.Code == CodeInvalidParameterValue
	case ErrUnavailable:
		return retryableStatus(e.StatusCode)
	}
	return false
}

// retryableStatus reports whether a response status is worth another attempt.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests
}

// IsUnavailable reports whether err means MLflow was unreachable or failing (see
// ErrUnavailable), as opposed to an authoritative answer such as "not found".
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }

// ErrorCode returns the MLflow error_code carried by err, or "" when err is not (or does
// not wrap) an *APIError.
func ErrorCode(err error) string {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Code
	}
	return ""
}
