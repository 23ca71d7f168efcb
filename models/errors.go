package models

import (
	"errors"
	"fmt"
)

// Sentinel errors the API maps to HTTP problems in one place.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// FieldError names the input field that is wrong and why, for RFC 9457 problem bodies.
type FieldError struct {
	Field   string `json:"field" example:"name"`
	Message string `json:"message" example:"is required"`
}

// ValidationError is a list of field errors; the API answers it with 422.
type ValidationError struct {
	Errors []FieldError
}

func (v *ValidationError) Error() string {
	if len(v.Errors) == 0 {
		return "validation failed"
	}
	return fmt.Sprintf("%s: %s", v.Errors[0].Field, v.Errors[0].Message)
}

// Add appends a field error.
func (v *ValidationError) Add(field, format string, args ...any) {
	v.Errors = append(v.Errors, FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// OrNil returns v as an error when it holds field errors, else nil.
func (v *ValidationError) OrNil() error {
	if v == nil || len(v.Errors) == 0 {
		return nil
	}
	return v
}
