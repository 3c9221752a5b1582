package keyless

// Validator: peer certificate chains checked by the service's
// CertificateValidator, as crypto/tls verification hooks.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// Purpose is what the peer's leaf certificate is used for.
type Purpose int

const (
	// ServerAuth checks a TLS server's chain (extendedKeyUsage serverAuth
	// when present) against a name, which the service requires.
	ServerAuth Purpose = Purpose(pb.Purpose_PURPOSE_SERVER_AUTH)
	// ClientAuth checks a TLS client's chain (extendedKeyUsage clientAuth
	// when present), against a name only when one is given.
	ClientAuth Purpose = Purpose(pb.Purpose_PURPOSE_CLIENT_AUTH)
)

// Options say how a chain is validated. At most one of DNSName, IPAddress
// and SPIFFEID is set.
type Options struct {
	Purpose Purpose
	// DNSName is a host name the leaf must carry as a dNSName SAN (RFC 6125,
	// wildcards allowed).
	DNSName string
	// IPAddress is an address the leaf must carry as an iPAddress SAN.
	IPAddress netip.Addr
	// SPIFFEID (spiffe://trust-domain/path) is the URI SAN the leaf must carry.
	SPIFFEID string
	// Time is when to validate; zero: now (the service's clock).
	Time time.Time
}

// Validator validates peer chains with the service, against one of its
// trust bundles. It is safe for concurrent use.
type Validator struct {
	client      pb.CertificateValidatorClient
	trustBundle string
	timeout     atomic.Int64 // a time.Duration; 0 is DefaultTimeout
}

// NewValidator returns a Validator over conn that validates against the
// named trust bundle ("": the keystore's "default"; "system": the service
// host's CA store). The caller needs a grant on the bundle unless it is open
// to everyone (default and system are, unless the policy lists them).
func NewValidator(conn grpc.ClientConnInterface, trustBundle string) *Validator {
	return &Validator{client: pb.NewCertificateValidatorClient(conn), trustBundle: trustBundle}
}

// SetTimeout sets the bound on each ValidateChain call made by the hooks,
// which have no context of their own (0: DefaultTimeout).
func (v *Validator) SetTimeout(d time.Duration) { v.timeout.Store(int64(d)) }

// Validate asks the service for a verdict on chain (DER, leaf first, as the
// peer sent it). A valid chain returns the verified path, leaf first, ending
// at the trust anchor. An invalid one returns a *ChainError with the alert
// and the reason; a failed call returns an *Error with the gRPC status
// (NotFound or PermissionDenied for the trust bundle, InvalidArgument naming
// the field, ...). ctx bounds the call; without a deadline it gets
// DefaultTimeout.
func (v *Validator) Validate(ctx context.Context, chain [][]byte, opts Options) ([]*x509.Certificate, error) {
	request := &pb.ValidateChainRequest{
		CertificateChain: chain,
		Purpose:          pb.Purpose(opts.Purpose),
		TrustBundle:      v.trustBundle,
	}
	names := 0
	if opts.DNSName != "" {
		request.ExpectedIdentity = &pb.ValidateChainRequest_DnsName{DnsName: opts.DNSName}
		names++
	}
	if opts.IPAddress.IsValid() {
		request.ExpectedIdentity = &pb.ValidateChainRequest_IpAddress{IpAddress: opts.IPAddress.String()}
		names++
	}
	if opts.SPIFFEID != "" {
		request.ExpectedIdentity = &pb.ValidateChainRequest_SpiffeId{SpiffeId: opts.SPIFFEID}
		names++
	}
	if names > 1 {
		return nil, errors.New("keyless: validate chain: set at most one of Options.DNSName, IPAddress and SPIFFEID")
	}
	if opts.Purpose != ServerAuth && opts.Purpose != ClientAuth {
		return nil, errors.New("keyless: validate chain: Options.Purpose must be ServerAuth or ClientAuth")
	}
	if !opts.Time.IsZero() {
		request.ValidationTime = timestamppb.New(opts.Time)
	}
	if len(chain) == 0 {
		// The service calls this misuse; for a hook it is a peer that sent
		// no certificate, which TLS names certificate_required.
		return nil, &ChainError{Alert: AlertCertificateRequired, Reason: "the peer sent no certificate"}
	}
	ctx, cancel := withDefaultTimeout(ctx, v.callTimeout())
	defer cancel()
	verdict, err := v.client.ValidateChain(ctx, request)
	if err != nil {
		return nil, callError("validate chain", v.bundleName(), err)
	}
	switch verdict.Verdict {
	case pb.Verdict_VERDICT_VALID:
	case pb.Verdict_VERDICT_INVALID:
		alert := verdict.Alert
		if alert == 0 || alert > 255 {
			alert = uint32(AlertBadCertificate)
		}
		return nil, &ChainError{Alert: uint8(alert), Reason: verdict.Reason}
	default:
		return nil, fmt.Errorf("keyless: validate chain (%s): the service answered verdict %v", v.bundleName(), verdict.Verdict)
	}
	path := make([]*x509.Certificate, 0, len(verdict.VerifiedPath))
	for _, der := range verdict.VerifiedPath {
		certificate, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("keyless: validate chain (%s): the verified path: %w", v.bundleName(), err)
		}
		path = append(path, certificate)
	}
	if len(path) == 0 {
		return nil, fmt.Errorf("keyless: validate chain (%s): a VALID verdict without a path", v.bundleName())
	}
	return path, nil
}

// VerifyConnection returns a tls.Config.VerifyConnection hook that validates
// the peer's chain with the service. It replaces Go's own verification, so
// use it with InsecureSkipVerify: true on a client (which only turns off
// crypto/tls's check; this hook still runs on every handshake, resumed ones
// included) and with ClientAuth: tls.RequireAnyClientCert on a server (Go
// then asks for and requires a certificate but leaves judging it to the hook).
//
// For ServerAuth with no name in opts, the name is the connection's
// ServerName (tls.Config.ServerName, else the host tls.Dial dialed), as a
// DNSName, or as an IPAddress should it be an IP literal. crypto/tls leaves
// ServerName empty for a server dialed by IP (SNI carries host names only),
// and the hook then fails rather than accept any name: set opts.IPAddress
// for such a server. For ClientAuth the name in opts is checked when given.
func (v *Validator) VerifyConnection(opts Options) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		opts := opts
		if opts.Purpose == ServerAuth && !hasIdentity(opts) {
			name := strings.TrimSuffix(cs.ServerName, ".")
			if name == "" {
				return errors.New("keyless: verify connection: no ServerName to check the server's certificate against (crypto/tls has none for a server dialed by IP: set Options.IPAddress, or tls.Config.ServerName)")
			}
			if ip, err := netip.ParseAddr(name); err == nil {
				opts.IPAddress = ip
			} else {
				opts.DNSName = name
			}
		}
		chain := make([][]byte, len(cs.PeerCertificates))
		for i, certificate := range cs.PeerCertificates {
			chain[i] = certificate.Raw
		}
		_, err := v.Validate(context.Background(), chain, opts)
		return err
	}
}

// VerifyPeerCertificate returns a tls.Config.VerifyPeerCertificate hook that
// validates rawCerts with the service (verifiedChains is empty under
// InsecureSkipVerify or RequireAnyClientCert, and unused). That hook is not
// told the server name, so for ServerAuth opts must name the identity; prefer
// VerifyConnection, which also runs on resumed sessions.
func (v *Validator) VerifyPeerCertificate(opts Options) func(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error {
	return func(rawCerts [][]byte, _ [][]*x509.Certificate) error {
		if opts.Purpose == ServerAuth && !hasIdentity(opts) {
			return errors.New("keyless: verify peer certificate: ServerAuth needs Options.DNSName, IPAddress or SPIFFEID (this hook is not told the server name)")
		}
		_, err := v.Validate(context.Background(), rawCerts, opts)
		return err
	}
}

func hasIdentity(opts Options) bool {
	return opts.DNSName != "" || opts.IPAddress.IsValid() || opts.SPIFFEID != ""
}

func (v *Validator) callTimeout() time.Duration {
	if d := time.Duration(v.timeout.Load()); d > 0 {
		return d
	}
	return DefaultTimeout
}

func (v *Validator) bundleName() string {
	if v.trustBundle == "" {
		return "default"
	}
	return v.trustBundle
}
