package keyless

// The errors a caller inspects: a failed call to the service, with its gRPC
// status kept, and a chain the service judged invalid.

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a call to the service that failed: what was asked, of which
// credential (or trust bundle), and the gRPC status the service (or the
// channel) answered. status.Code and status.FromError see through it, so
//
//	if status.Code(err) == codes.PermissionDenied { ... }
//
// works on what Key.Sign, Decrypt, NewKey and Validate return. The message is
// the service's, which names the field at fault and never carries key
// material or the data that was signed.
type Error struct {
	// Op is the operation: "sign", "decrypt", "get credential", "validate chain".
	Op string
	// Name is the credential (for a key operation) or the trust bundle.
	Name   string
	Status *status.Status
}

func (e *Error) Error() string {
	return fmt.Sprintf("keyless: %s (%s): %s: %s", e.Op, e.Name, e.Status.Code(), e.Status.Message())
}

// GRPCStatus makes status.FromError and status.Code report the service's status.
func (e *Error) GRPCStatus() *status.Status { return e.Status }

// Code is the gRPC status code: NotFound, PermissionDenied, InvalidArgument,
// Unavailable, DeadlineExceeded (the per-call timeout), ...
func (e *Error) Code() codes.Code { return e.Status.Code() }

// Unwrap exposes the status error (and, for a call that ran out of time or was
// cancelled, context.DeadlineExceeded or context.Canceled) to errors.Is.
func (e *Error) Unwrap() []error {
	unwrapped := []error{e.Status.Err()}
	switch e.Status.Code() {
	case codes.DeadlineExceeded:
		unwrapped = append(unwrapped, context.DeadlineExceeded)
	case codes.Canceled:
		unwrapped = append(unwrapped, context.Canceled)
	}
	return unwrapped
}

// callError wraps what a gRPC call returned. An error that is no status (a
// context error before the call was sent) becomes one, so that callers see
// one shape.
func callError(op, name string, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	return &Error{Op: op, Name: name, Status: st}
}

// ChainError is a peer chain that the service judged INVALID: the TLS alert
// a stack should send and the service's reason. crypto/tls itself always
// sends bad_certificate when a VerifyConnection or VerifyPeerCertificate hook
// fails; Alert says what the service found, for logs and metrics.
type ChainError struct {
	// Alert is the IANA AlertDescription: 42 bad_certificate, 45
	// certificate_expired, 46 certificate_unknown, 48 unknown_ca, ...
	Alert uint8
	// Reason is the service's explanation, e.g. which name did not match.
	Reason string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("keyless: peer certificate chain invalid: %s (%d): %s", alertName(e.Alert), e.Alert, e.Reason)
}

// TLS alert descriptions a validator answers with (RFC 8446 section 6).
const (
	AlertBadCertificate         uint8 = 42
	AlertUnsupportedCertificate uint8 = 43
	AlertCertificateRevoked     uint8 = 44
	AlertCertificateExpired     uint8 = 45
	AlertCertificateUnknown     uint8 = 46
	AlertUnknownCA              uint8 = 48
	AlertAccessDenied           uint8 = 49
	AlertCertificateRequired    uint8 = 116
)

func alertName(alert uint8) string {
	switch alert {
	case AlertBadCertificate:
		return "bad_certificate"
	case AlertUnsupportedCertificate:
		return "unsupported_certificate"
	case AlertCertificateRevoked:
		return "certificate_revoked"
	case AlertCertificateExpired:
		return "certificate_expired"
	case AlertCertificateUnknown:
		return "certificate_unknown"
	case AlertUnknownCA:
		return "unknown_ca"
	case AlertAccessDenied:
		return "access_denied"
	case AlertCertificateRequired:
		return "certificate_required"
	}
	return fmt.Sprintf("alert_%d", alert)
}
