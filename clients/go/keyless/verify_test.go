package keyless_test

// Validator hooks in stock crypto/tls clients and servers, against real
// peers: servers and clients with keyless certificates from the keystore,
// and a server from a CA the service does not trust.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/handshaker/handshaker/clients/go/keyless"
)

// serveTLS accepts TLS connections with config on loopback until the test
// ends; each handshake's outcome goes to the returned channel, and a
// connection that completes one is answered "ok".
func serveTLS(t *testing.T, config *tls.Config) (addr string, handshakes <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 16)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				conn := tls.Server(raw, config)
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(ioTimeout))
				err := conn.Handshake()
				results <- err
				if err == nil {
					_, _ = conn.Write([]byte("ok"))
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), results
}

// dialTLS runs a crypto/tls client handshake and reads the server's "ok".
func dialTLS(addr string, config *tls.Config) error {
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: config}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	answer := make([]byte, 2)
	// ReadFull: crypto/tls may return the data with the close_notify's EOF.
	if _, err := io.ReadFull(conn, answer); err != nil {
		return err
	}
	if string(answer) != "ok" {
		return errors.New("the server did not answer ok")
	}
	return nil
}

func handshakeResult(t *testing.T, handshakes <-chan error) error {
	t.Helper()
	select {
	case err := <-handshakes:
		return err
	case <-time.After(ioTimeout):
		t.Fatal("the server saw no handshake")
		return nil
	}
}

func wantChainError(t *testing.T, what string, err error, alert uint8) {
	t.Helper()
	var chainErr *keyless.ChainError
	if !errors.As(err, &chainErr) {
		t.Fatalf("%s: want a *keyless.ChainError, got %v", what, err)
	}
	if chainErr.Alert != alert || chainErr.Reason == "" {
		t.Fatalf("%s: alert %d (%q), want %d", what, chainErr.Alert, chainErr.Reason, alert)
	}
}

func TestValidatorInACryptoTLSClient(t *testing.T) {
	s := needService(t)
	validator := keyless.NewValidator(s.conn, "")
	addr, _ := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{certificate(t, s, credECDSA)}})
	_, port, _ := net.SplitHostPort(addr)
	client := func(serverName string, version uint16) *tls.Config {
		return &tls.Config{
			// The hook replaces Go's own verification, which this turns off.
			InsecureSkipVerify: true,
			VerifyConnection:   validator.VerifyConnection(keyless.Options{Purpose: keyless.ServerAuth}),
			ServerName:         serverName,
			MaxVersion:         version,
		}
	}
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		if err := dialTLS(addr, client("localhost", version)); err != nil {
			t.Fatalf("%s, a good server by name: %v", tls.VersionName(version), err)
		}
	}
	// crypto/tls keeps no IP literal as the ServerName (SNI has host names
	// only), so the hook fails instead of checking nothing; the address goes
	// in the Options, as an iPAddress SAN to match.
	if err := dialTLS(addr, client("127.0.0.1", 0)); err == nil {
		t.Fatal("a server dialed by IP was accepted without a name to check")
	}
	byIP := client("127.0.0.1", 0)
	byIP.VerifyConnection = validator.VerifyConnection(keyless.Options{Purpose: keyless.ServerAuth, IPAddress: netip.MustParseAddr("127.0.0.1")})
	if err := dialTLS(addr, byIP); err != nil {
		t.Fatalf("a good server by IP: %v", err)
	}
	if err := dialTLS("localhost:"+port, client("", 0)); err != nil {
		t.Fatalf("a good server by the dialed host name: %v", err)
	}

	err := dialTLS(addr, client("wrong.test", 0))
	wantChainError(t, "a wrong name", err, keyless.AlertBadCertificate)

	foreign, _ := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.foreign}})
	err = dialTLS(foreign, client("localhost", 0))
	wantChainError(t, "an unknown CA", err, keyless.AlertUnknownCA)

	// The VerifyPeerCertificate form is told no server name, so it takes one.
	peerHook := func(options keyless.Options) *tls.Config {
		return &tls.Config{InsecureSkipVerify: true, VerifyPeerCertificate: validator.VerifyPeerCertificate(options), ServerName: "localhost"}
	}
	if err := dialTLS(addr, peerHook(keyless.Options{Purpose: keyless.ServerAuth, DNSName: "localhost"})); err != nil {
		t.Fatalf("VerifyPeerCertificate, a good server: %v", err)
	}
	err = dialTLS(addr, peerHook(keyless.Options{Purpose: keyless.ServerAuth, IPAddress: netip.MustParseAddr("127.0.0.2")}))
	wantChainError(t, "VerifyPeerCertificate, a wrong IP", err, keyless.AlertBadCertificate)
	if err := dialTLS(addr, peerHook(keyless.Options{Purpose: keyless.ServerAuth})); err == nil {
		t.Fatal("VerifyPeerCertificate for a server without a name accepted it")
	}
}

func TestValidatorInACryptoTLSServer(t *testing.T) {
	s := needService(t)
	validator := keyless.NewValidator(s.conn, "")
	serverCert := certificate(t, s, credECDSA)
	server := func(options keyless.Options) *tls.Config {
		return &tls.Config{
			Certificates: []tls.Certificate{serverCert},
			// Go asks for a certificate and requires one, and leaves judging it to the hook.
			ClientAuth:       tls.RequireAnyClientCert,
			VerifyConnection: validator.VerifyConnection(options),
		}
	}
	// The client's key is keyless too: its CertificateVerify is signed by the service.
	client := func(cert tls.Certificate, version uint16) *tls.Config {
		return &tls.Config{RootCAs: s.devCA, ServerName: "localhost", Certificates: []tls.Certificate{cert}, MaxVersion: version}
	}
	clientCert := certificate(t, s, credClient)

	addr, handshakes := serveTLS(t, server(keyless.Options{Purpose: keyless.ClientAuth}))
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		if err := dialTLS(addr, client(clientCert, version)); err != nil {
			t.Fatalf("%s, a good client: %v", tls.VersionName(version), err)
		}
		if err := handshakeResult(t, handshakes); err != nil {
			t.Fatalf("%s, the server refused a good client: %v", tls.VersionName(version), err)
		}
	}
	// A client from an unknown CA: the server's hook refuses it.
	if err := dialTLS(addr, client(s.foreign, 0)); err == nil {
		t.Fatal("a client from an unknown CA was served")
	}
	wantChainError(t, "a client from an unknown CA", handshakeResult(t, handshakes), keyless.AlertUnknownCA)

	named, namedHandshakes := serveTLS(t, server(keyless.Options{Purpose: keyless.ClientAuth, DNSName: "client"}))
	if err := dialTLS(named, client(clientCert, 0)); err != nil {
		t.Fatalf("the expected client: %v", err)
	}
	if err := handshakeResult(t, namedHandshakes); err != nil {
		t.Fatalf("the server refused the expected client: %v", err)
	}
	other, otherHandshakes := serveTLS(t, server(keyless.Options{Purpose: keyless.ClientAuth, DNSName: "someone-else"}))
	if err := dialTLS(other, client(clientCert, 0)); err == nil {
		t.Fatal("a client with another name was served")
	}
	wantChainError(t, "a client with another name", handshakeResult(t, otherHandshakes), keyless.AlertBadCertificate)
}

func TestValidate(t *testing.T) {
	s := needService(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	chain := newKey(t, s, credRSA).CertificateChain()
	validator := keyless.NewValidator(s.conn, "")
	path, err := validator.Validate(ctx, chain, keyless.Options{Purpose: keyless.ServerAuth, DNSName: "localhost"})
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// The leaf, then the dev CA: the anchor the path ends at.
	if len(path) != 2 || !path[1].IsCA {
		t.Fatalf("a path of %d certificates", len(path))
	}
	if _, err := path[0].Verify(x509.VerifyOptions{Roots: s.devCA, DNSName: "localhost"}); err != nil {
		t.Fatalf("the path's leaf does not verify locally: %v", err)
	}
	// Expired by the time given.
	_, err = validator.Validate(ctx, chain, keyless.Options{Purpose: keyless.ServerAuth, DNSName: "localhost", Time: time.Now().AddDate(50, 0, 0)})
	wantChainError(t, "a chain validated 50 years on", err, keyless.AlertCertificateExpired)

	_, err = keyless.NewValidator(s.conn, "nosuch").Validate(ctx, chain, keyless.Options{Purpose: keyless.ServerAuth, DNSName: "localhost"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("an unknown trust bundle: %v", err)
	}
	// The service says which field is wrong.
	_, err = validator.Validate(ctx, chain, keyless.Options{Purpose: keyless.ServerAuth, DNSName: "not a name!"})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a malformed dns name: %v", err)
	}
	if _, err := validator.Validate(ctx, chain, keyless.Options{DNSName: "localhost"}); err == nil {
		t.Fatal("a validation without a purpose was sent")
	}
	_, err = validator.Validate(ctx, nil, keyless.Options{Purpose: keyless.ClientAuth})
	wantChainError(t, "no certificate", err, keyless.AlertCertificateRequired)
}
