package handshaker

// Config and its translation into the contract's ClientOptions and ServerOptions.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/grpc"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// DefaultServiceAddr is where the service is looked for when neither
// Config.ServiceAddr nor $HANDSHAKER_ADDR says otherwise.
const DefaultServiceAddr = "127.0.0.1:50051"

// ClientAuth says whether a server asks for, and insists on, a client certificate.
type ClientAuth int

const (
	// ClientAuthNone sends no CertificateRequest.
	ClientAuthNone ClientAuth = iota
	// ClientAuthOptional requests a certificate; a client may send none.
	// A certificate that is sent must validate.
	ClientAuthOptional
	// ClientAuthRequired requests a certificate and fails a client without one
	// with certificate_required.
	ClientAuthRequired
)

// Config configures connections whose handshakes run in the handshaker
// service. The zero value is a client that validates the server against the
// service's default trust bundle. A Config may be shared by many connections
// and must not be modified once in use.
type Config struct {
	// ServiceAddr is the gRPC address of the service: "host:port" or
	// "unix:PATH". Empty: $HANDSHAKER_ADDR, else DefaultServiceAddr.
	ServiceAddr string
	// DialOptions are used for the gRPC channel to the service, after an
	// insecure-transport default that a grpc.WithTransportCredentials here
	// replaces. Without DialOptions, Configs share one channel per address.
	DialOptions []grpc.DialOption
	// Service, when set, is the channel to use; ServiceAddr and DialOptions
	// are then ignored and the caller owns the channel.
	Service grpc.ClientConnInterface
	// Multiplex runs handshakes on a few long-lived Multiplex streams
	// instead of a Handshake stream each. The streams belong to the gRPC
	// channel, so the handshakes of all Conns whose Configs use the same
	// channel (the same address without DialOptions, or the same Service)
	// share them. Frames of different handshakes that are ready together go
	// to the service in one message and their answers come back in one,
	// which cuts the service's gRPC cost per handshake under load:
	// recommended for proxies and servers that handle many connections.
	// Results and errors are as without it; when a stream breaks, the
	// handshakes on it fail with its gRPC status and the next handshake
	// opens a new stream. The streams end with their channel (for a
	// Service, when the caller closes it).
	Multiplex bool

	// ServerName is the server name (SNI) a client sends and checks the
	// server's certificate against. Empty: the host part of Dial's address.
	ServerName string
	// NextProtos are the ALPN protocols, most preferred first.
	NextProtos []string

	// TrustBundle names the keystore trust bundle that validates the server
	// (client role). Empty, with no RootCAsPEM: the service's "default" bundle.
	TrustBundle string
	// RootCAsPEM are trust anchors given inline, one or more PEM certificates;
	// an alternative to TrustBundle.
	RootCAsPEM []byte
	// InsecureSkipVerify accepts any server certificate. For tests only.
	InsecureSkipVerify bool

	// Credential is a keystore credential name: in the client role the
	// certificate presented when the server asks for one (empty: none); in the
	// server role the certificate served (empty: chosen by the client's SNI).
	Credential string

	// ClientAuth is the server role's client-certificate policy.
	ClientAuth ClientAuth
	// ClientTrustBundle names the keystore trust bundle that validates client
	// certificates. Empty, with no ClientCAsPEM: "default".
	ClientTrustBundle string
	// ClientCAsPEM are client trust anchors given inline (PEM).
	ClientCAsPEM []byte

	// CipherSuites are the cipher suites to offer or accept, most preferred
	// first, TLS 1.3 (tls.TLS_AES_128_GCM_SHA256 ...) and TLS 1.2
	// (tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 ...) in one list. Empty:
	// the service's defaults; a version the list names no suite of keeps its
	// defaults (MinVersion and MaxVersion switch a version off).
	CipherSuites []uint16
	// CurvePreferences are the key exchange groups, most preferred first.
	// Empty: the service's defaults.
	CurvePreferences []tls.CurveID

	// MinVersion and MaxVersion bound the TLS versions to offer or accept:
	// tls.VersionTLS12 or tls.VersionTLS13. Zero: TLS 1.2 and TLS 1.3 (a
	// server prefers TLS 1.3). Nothing older exists here.
	MinVersion uint16
	MaxVersion uint16

	// KeyLogWriter, when set, receives NSS key-log lines (SSLKEYLOGFILE
	// format) for each connection, so that captures can be decrypted. It
	// weakens the security of every connection it logs: debugging only.
	KeyLogWriter io.Writer
}

func (c *Config) serviceAddr() string {
	if c.ServiceAddr != "" {
		return c.ServiceAddr
	}
	if addr := os.Getenv("HANDSHAKER_ADDR"); addr != "" {
		return addr
	}
	return DefaultServiceAddr
}

func uint32s[T ~uint16](values []T) []uint32 {
	if len(values) == 0 {
		return nil
	}
	out := make([]uint32, len(values))
	for i, v := range values {
		out[i] = uint32(v)
	}
	return out
}

var defaultConfig = &Config{}

func (c *Config) orDefault() *Config {
	if c == nil {
		return defaultConfig
	}
	return c
}

// versions checks MinVersion and MaxVersion: zero, TLS 1.2 or TLS 1.3.
func (c *Config) versions() (uint32, uint32, error) {
	for _, v := range []uint16{c.MinVersion, c.MaxVersion} {
		if v != 0 && v != tls.VersionTLS12 && v != tls.VersionTLS13 {
			return 0, 0, fmt.Errorf("handshaker: TLS version %#04x: only TLS 1.2 and TLS 1.3 are supported", v)
		}
	}
	if c.MinVersion != 0 && c.MaxVersion != 0 && c.MinVersion > c.MaxVersion {
		return 0, 0, errors.New("handshaker: Config.MinVersion is above Config.MaxVersion")
	}
	return uint32(c.MinVersion), uint32(c.MaxVersion), nil
}

func (c *Config) clientOptions(serverName string) (*pb.ClientOptions, error) {
	if serverName == "" {
		return nil, errors.New("handshaker: no server name: set Config.ServerName or dial a host name")
	}
	minVersion, maxVersion, err := c.versions()
	if err != nil {
		return nil, err
	}
	options := &pb.ClientOptions{
		ServerName:         serverName,
		AlpnProtocols:      c.NextProtos,
		Credential:         c.Credential,
		CipherSuites:       uint32s(c.CipherSuites),
		Groups:             uint32s(c.CurvePreferences),
		InsecureSkipVerify: c.InsecureSkipVerify,
		Keylog:             c.KeyLogWriter != nil,
		MinVersion:         minVersion,
		MaxVersion:         maxVersion,
	}
	// An IP address is not a server name (RFC 6066 section 3): no SNI, and the
	// certificate's iPAddress SAN is checked against it.
	if net.ParseIP(serverName) != nil {
		options.ServerName, options.ExpectedIpAddress = "", serverName
	}
	switch {
	case c.TrustBundle != "" && len(c.RootCAsPEM) > 0:
		return nil, errors.New("handshaker: set Config.TrustBundle or Config.RootCAsPEM, not both")
	case len(c.RootCAsPEM) > 0:
		options.Trust = &pb.ClientOptions_TrustAnchorsPem{TrustAnchorsPem: string(c.RootCAsPEM)}
	case c.TrustBundle != "":
		options.Trust = &pb.ClientOptions_TrustBundle{TrustBundle: c.TrustBundle}
	}
	return options, nil
}

func (c *Config) serverOptions() (*pb.ServerOptions, error) {
	minVersion, maxVersion, err := c.versions()
	if err != nil {
		return nil, err
	}
	options := &pb.ServerOptions{
		Credential:    c.Credential,
		AlpnProtocols: c.NextProtos,
		CipherSuites:  uint32s(c.CipherSuites),
		Groups:        uint32s(c.CurvePreferences),
		Keylog:        c.KeyLogWriter != nil,
		MinVersion:    minVersion,
		MaxVersion:    maxVersion,
	}
	switch c.ClientAuth {
	case ClientAuthNone:
		options.ClientAuth = pb.ClientAuth_CLIENT_AUTH_NONE
		return options, nil
	case ClientAuthOptional:
		options.ClientAuth = pb.ClientAuth_CLIENT_AUTH_OPTIONAL
	case ClientAuthRequired:
		options.ClientAuth = pb.ClientAuth_CLIENT_AUTH_REQUIRED
	default:
		return nil, errors.New("handshaker: unknown Config.ClientAuth")
	}
	switch {
	case c.ClientTrustBundle != "" && len(c.ClientCAsPEM) > 0:
		return nil, errors.New("handshaker: set Config.ClientTrustBundle or Config.ClientCAsPEM, not both")
	case len(c.ClientCAsPEM) > 0:
		options.ClientTrust = &pb.ServerOptions_ClientTrustAnchorsPem{ClientTrustAnchorsPem: string(c.ClientCAsPEM)}
	case c.ClientTrustBundle != "":
		options.ClientTrust = &pb.ServerOptions_ClientTrustBundle{ClientTrustBundle: c.ClientTrustBundle}
	default:
		options.ClientTrust = &pb.ServerOptions_ClientTrustBundle{ClientTrustBundle: "default"}
	}
	return options, nil
}
