package handshaker

// The errors a caller inspects: handshake failures and post-handshake alerts.

import (
	"fmt"
	"strconv"
)

// TLS alert descriptions (RFC 8446 section 6, IANA TLS Alert Registry).
const (
	AlertCloseNotify            uint8 = 0
	AlertUnexpectedMessage      uint8 = 10
	AlertBadRecordMAC           uint8 = 20
	AlertRecordOverflow         uint8 = 22
	AlertHandshakeFailure       uint8 = 40
	AlertBadCertificate         uint8 = 42
	AlertUnsupportedCertificate uint8 = 43
	AlertCertificateRevoked     uint8 = 44
	AlertCertificateExpired     uint8 = 45
	AlertCertificateUnknown     uint8 = 46
	AlertIllegalParameter       uint8 = 47
	AlertUnknownCA              uint8 = 48
	AlertAccessDenied           uint8 = 49
	AlertDecodeError            uint8 = 50
	AlertDecryptError           uint8 = 51
	AlertProtocolVersion        uint8 = 70
	AlertInsufficientSecurity   uint8 = 71
	AlertInternalError          uint8 = 80
	AlertInappropriateFallback  uint8 = 86
	AlertUserCanceled           uint8 = 90
	AlertMissingExtension       uint8 = 109
	AlertUnsupportedExtension   uint8 = 110
	AlertUnrecognizedName       uint8 = 112
	AlertBadCertificateStatus   uint8 = 113
	AlertUnknownPSKIdentity     uint8 = 115
	AlertCertificateRequired    uint8 = 116
	AlertNoApplicationProtocol  uint8 = 120
)

var alertNames = map[uint8]string{
	AlertCloseNotify:            "close_notify",
	AlertUnexpectedMessage:      "unexpected_message",
	AlertBadRecordMAC:           "bad_record_mac",
	AlertRecordOverflow:         "record_overflow",
	AlertHandshakeFailure:       "handshake_failure",
	AlertBadCertificate:         "bad_certificate",
	AlertUnsupportedCertificate: "unsupported_certificate",
	AlertCertificateRevoked:     "certificate_revoked",
	AlertCertificateExpired:     "certificate_expired",
	AlertCertificateUnknown:     "certificate_unknown",
	AlertIllegalParameter:       "illegal_parameter",
	AlertUnknownCA:              "unknown_ca",
	AlertAccessDenied:           "access_denied",
	AlertDecodeError:            "decode_error",
	AlertDecryptError:           "decrypt_error",
	AlertProtocolVersion:        "protocol_version",
	AlertInsufficientSecurity:   "insufficient_security",
	AlertInternalError:          "internal_error",
	AlertInappropriateFallback:  "inappropriate_fallback",
	AlertUserCanceled:           "user_canceled",
	AlertMissingExtension:       "missing_extension",
	AlertUnsupportedExtension:   "unsupported_extension",
	AlertUnrecognizedName:       "unrecognized_name",
	AlertBadCertificateStatus:   "bad_certificate_status_response",
	AlertUnknownPSKIdentity:     "unknown_psk_identity",
	AlertCertificateRequired:    "certificate_required",
	AlertNoApplicationProtocol:  "no_application_protocol",
}

// AlertName returns the RFC name of a TLS alert description, e.g. "unknown_ca" for 48.
func AlertName(alert uint8) string {
	if name, ok := alertNames[alert]; ok {
		return name
	}
	return "alert_" + strconv.Itoa(int(alert))
}

// HandshakeError reports a TLS handshake that failed. When SentByPeer is
// false this side raised the alert, and its alert record was written to the
// peer before the error was returned.
type HandshakeError struct {
	// Alert is the TLS alert description (IANA), e.g. 48 unknown_ca.
	Alert uint8
	// Reason says why, for logs; it never contains key material.
	Reason string
	// SentByPeer is true when the peer sent the alert.
	SentByPeer bool
}

func (e *HandshakeError) Error() string {
	if e.SentByPeer {
		return fmt.Sprintf("handshaker: handshake failed: the peer sent %s (%d): %s", AlertName(e.Alert), e.Alert, e.Reason)
	}
	return fmt.Sprintf("handshaker: handshake failed: %s (%d): %s", AlertName(e.Alert), e.Alert, e.Reason)
}

// AlertError reports a TLS error after the handshake: a fatal alert the peer
// sent, or one this side sent because the peer broke the record protocol.
// The connection can carry no more data either way.
type AlertError struct {
	Alert      uint8
	Reason     string
	SentByPeer bool
}

func (e *AlertError) Error() string {
	if e.SentByPeer {
		return fmt.Sprintf("handshaker: the peer sent %s (%d)", AlertName(e.Alert), e.Alert)
	}
	return fmt.Sprintf("handshaker: %s (%d): %s", AlertName(e.Alert), e.Alert, e.Reason)
}
