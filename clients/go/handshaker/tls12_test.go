package handshaker_test

// TLS 1.2 through the real service against crypto/tls peers capped at TLS
// 1.2, in both roles: every AEAD suite, full-size records, application data
// both ways, mutual TLS, the RFC 5705 exporter, close_notify, no KeyUpdate.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"testing"

	"github.com/handshaker/handshaker/clients/go/handshaker"
)

// tls12Suites are the ECDHE AEAD suites, with the credential type they need.
var tls12Suites = []struct {
	id  uint16
	rsa bool
}{
	{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, false},
	{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, false},
	{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, false},
	{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, true},
	{tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true},
	{tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256, true},
}

// fullRecord12 is the length of a TLS 1.2 record carrying 2^14 bytes: the
// GCM explicit nonce (8 bytes, none for ChaCha20-Poly1305), the data, the tag.
func fullRecord12(suite uint16) int {
	switch suite {
	case tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256:
		return 1<<14 + 16
	}
	return 8 + 1<<14 + 16
}

// credentialFor is the keystore credential, its certificate for crypto/tls
// and its server name, for a suite's signature algorithm.
func credentialFor(s *testService, rsa bool) (string, tls.Certificate, string) {
	if rsa {
		return "rsa", s.rsa, "rsa.test"
	}
	return "localhost", s.localhost, "localhost"
}

func checkTLS12(t *testing.T, who string, version, suite, want uint16) {
	t.Helper()
	if version != tls.VersionTLS12 || suite != want {
		t.Fatalf("%s: version %#04x suite %#04x, want TLS 1.2 with %#04x", who, version, suite, want)
	}
}

func TestDialTLS12EachSuiteWithCryptoTLSServer(t *testing.T) {
	s := needService(t)
	for _, suite := range tls12Suites {
		t.Run(tls.CipherSuiteName(suite.id), func(t *testing.T) {
			_, cert, name := credentialFor(s, suite.rsa)
			serverState := make(chan tls.ConnectionState, 1)
			sizes := &recordSizes{Listener: loopbackListener(t)}
			config := &tls.Config{Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite.id}}
			serveConns(t, tls.NewListener(sizes, config), func(c net.Conn) {
				conn := c.(*tls.Conn)
				if conn.Handshake() == nil {
					serverState <- conn.ConnectionState()
					echo(conn)
				}
			})
			conn := dial(t, sizes.Addr().String(), &handshaker.Config{ServerName: name})
			state := conn.ConnectionState()
			checkTLS12(t, "client", state.Version, state.CipherSuite, suite.id)
			peer := <-serverState
			checkTLS12(t, "server", peer.Version, peer.CipherSuite, suite.id)
			roundTrip(t, conn, []byte("hello over TLS 1.2"))
			roundTrip(t, conn, randomBytes(t, 200_000))
			if longest := slices.Max(sizes.all()); longest != fullRecord12(suite.id) {
				t.Errorf("longest record from the client is %d bytes, want %d", longest, fullRecord12(suite.id))
			}
		})
	}
}

func TestDialTLS12PresentsKeystoreCredentialForMutualTLS(t *testing.T) {
	s := needService(t)
	seen := make(chan []string, 1)
	addr := serveTLS(t, &tls.Config{
		Certificates: []tls.Certificate{s.localhost},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.devCA,
		MaxVersion:   tls.VersionTLS12,
	}, nil, func(conn *tls.Conn) {
		seen <- conn.ConnectionState().PeerCertificates[0].DNSNames
		echo(conn)
	})
	conn := dial(t, addr, &handshaker.Config{Credential: "client"})
	if v := conn.ConnectionState().Version; v != tls.VersionTLS12 {
		t.Fatalf("version %#04x", v)
	}
	roundTrip(t, conn, []byte("mutual TLS 1.2"))
	if names := <-seen; !slices.Equal(names, []string{"client"}) {
		t.Errorf("the server saw client certificate names %v", names)
	}
	if conn.ConnectionState().SignatureScheme == 0 {
		t.Error("no CertificateVerify scheme for this side, though it sent a certificate")
	}
}

// exporterInputs are the label and contexts each side exports with: a
// context, none, and an empty one (RFC 5705: no context differs from an
// empty one).
var exporterContexts = [][]byte{[]byte("context"), nil, {}}

const exporterLabel = "EXPORTER-handshaker-test"

func exportAll(export func(string, []byte, int) ([]byte, error)) ([]byte, error) {
	var all []byte
	for _, context := range exporterContexts {
		material, err := export(exporterLabel, context, 32)
		if err != nil {
			return nil, err
		}
		all = append(all, material...)
	}
	return all, nil
}

func checkExported(t *testing.T, ours, peer []byte) {
	t.Helper()
	if !bytes.Equal(ours, peer) {
		t.Fatalf("exported keying material differs from the peer's:\n%x\n%x", ours, peer)
	}
	if bytes.Equal(ours[32:64], ours[64:]) {
		t.Error("no context and an empty context gave the same material")
	}
}

func TestDialTLS12ExportKeyingMaterialMatchesCryptoTLSPeer(t *testing.T) {
	s := needService(t)
	// P_SHA256 and P_SHA384.
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}}, nil, func(conn *tls.Conn) {
				state := conn.ConnectionState()
				if material, err := exportAll(state.ExportKeyingMaterial); err == nil {
					_, _ = conn.Write(material)
				}
			})
			conn := dial(t, addr, nil)
			peer := make([]byte, 3*32)
			if _, err := io.ReadFull(conn, peer); err != nil {
				t.Fatal(err)
			}
			ours, err := exportAll(conn.ExportKeyingMaterial)
			if err != nil {
				t.Fatal(err)
			}
			checkExported(t, ours, peer)
			if _, err := conn.ExportKeyingMaterial("master secret", nil, 32); err == nil {
				t.Error("the reserved label \"master secret\" was accepted")
			}
		})
	}
}

func TestDialTLS12RefusesUpdateKeysAndGoesOn(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, MaxVersion: tls.VersionTLS12}, nil, echo)
	conn := dial(t, addr, nil)
	roundTrip(t, conn, []byte("before"))
	if err := conn.UpdateKeys(true); err == nil {
		t.Fatal("UpdateKeys succeeded on TLS 1.2")
	}
	roundTrip(t, conn, []byte("after"))
}

func TestDialTLS12CloseSendsCloseNotify(t *testing.T) {
	s := needService(t)
	readErr := make(chan error, 1)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, MaxVersion: tls.VersionTLS12}, nil, func(conn *tls.Conn) {
		_, err := io.Copy(io.Discard, conn)
		readErr <- err
	})
	conn := dial(t, addr, nil)
	if _, err := conn.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	// io.Copy returns nil on the io.EOF that close_notify gives.
	if err := <-readErr; err != nil {
		t.Errorf("the server's read ended with %v, want close_notify", err)
	}
}

func TestDialVersionBounds(t *testing.T) {
	s := needService(t)
	t.Run("MaxVersion TLS 1.2 against a TLS 1.3 server", func(t *testing.T) {
		addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
		conn := dial(t, addr, &handshaker.Config{MaxVersion: tls.VersionTLS12})
		if v := conn.ConnectionState().Version; v != tls.VersionTLS12 {
			t.Fatalf("version %#04x, want TLS 1.2", v)
		}
		roundTrip(t, conn, []byte("capped"))
	})
	t.Run("MinVersion TLS 1.3 against a TLS 1.2 server", func(t *testing.T) {
		addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, MaxVersion: tls.VersionTLS12}, nil, echo)
		_, err := dialErr(addr, &handshaker.Config{MinVersion: tls.VersionTLS13})
		var failure *handshaker.HandshakeError
		if !errors.As(err, &failure) || failure.Alert != handshaker.AlertProtocolVersion {
			t.Fatalf("Dial: %v, want protocol_version", err)
		}
	})
	t.Run("no TLS 1.1", func(t *testing.T) {
		if _, err := dialErr("127.0.0.1:1", &handshaker.Config{ServerName: "x", MinVersion: tls.VersionTLS11}); err == nil {
			t.Fatal("MinVersion TLS 1.1 was accepted")
		}
	})
}

func TestNewListenerTLS12EachSuiteWithCryptoTLSClient(t *testing.T) {
	s := needService(t)
	for _, suite := range tls12Suites {
		t.Run(tls.CipherSuiteName(suite.id), func(t *testing.T) {
			credential, _, name := credentialFor(s, suite.rsa)
			states := make(chan handshaker.ConnectionState, 1)
			addr := serveEcho(t, &handshaker.Config{Credential: credential}, states, nil)
			conn, err := tlsDial(t, addr, &tls.Config{ServerName: name, RootCAs: s.devCA, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite.id}})
			if err != nil {
				t.Fatal(err)
			}
			client := conn.ConnectionState()
			checkTLS12(t, "client", client.Version, client.CipherSuite, suite.id)
			server := <-states
			checkTLS12(t, "server", server.Version, server.CipherSuite, suite.id)
			roundTrip(t, conn, []byte("hello over TLS 1.2"))
			roundTrip(t, conn, randomBytes(t, 200_000))
			// Our close_notify ends the server's echo, which closes with its own.
			if err := conn.CloseWrite(); err != nil {
				t.Fatal(err)
			}
			if rest, err := io.ReadAll(conn); err != nil || len(rest) != 0 {
				t.Fatalf("after close_notify: %d bytes, %v; want the server's close_notify", len(rest), err)
			}
		})
	}
}

func TestNewListenerTLS12RequiresAndVerifiesClientCertificates(t *testing.T) {
	s := needService(t)
	states := make(chan handshaker.ConnectionState, 1)
	errs := make(chan error, 1)
	addr := serveEcho(t, &handshaker.Config{Credential: "localhost", ClientAuth: handshaker.ClientAuthRequired}, states, errs)
	base := tls.Config{ServerName: "localhost", RootCAs: s.devCA, MaxVersion: tls.VersionTLS12}

	t.Run("with a certificate from the dev CA", func(t *testing.T) {
		config := base.Clone()
		config.Certificates = []tls.Certificate{s.client}
		conn, err := tlsDial(t, addr, config)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, []byte("mutual TLS 1.2"))
		state := <-states
		if state.Version != tls.VersionTLS12 {
			t.Fatalf("version %#04x", state.Version)
		}
		if len(state.PeerCertificates) == 0 || !slices.Equal(state.PeerCertificates[0].DNSNames, []string{"client"}) {
			t.Errorf("the server saw peer certificates %v", state.PeerCertificates)
		}
		if state.PeerSignatureScheme == 0 {
			t.Error("no peer CertificateVerify scheme")
		}
	})

	t.Run("without a certificate", func(t *testing.T) {
		conn, err := tlsDial(t, addr, base.Clone())
		if err == nil {
			// TLS 1.2: the server judges before its Finished, so the handshake fails.
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil {
			t.Error("the client without a certificate got through")
		}
		var failure *handshaker.HandshakeError
		if err := <-errs; !errors.As(err, &failure) || failure.SentByPeer {
			t.Errorf("server handshake error %v, want an alert raised by this side", err)
		}
	})
}

func TestNewListenerTLS12ExportKeyingMaterialMatchesCryptoTLSClient(t *testing.T) {
	s := needService(t)
	for _, suite := range []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			inner := loopbackListener(t)
			serveConns(t, handshaker.NewListener(inner, &handshaker.Config{Credential: "localhost"}), func(c net.Conn) {
				conn := c.(*handshaker.Conn)
				if conn.Handshake() != nil {
					return
				}
				if material, err := exportAll(conn.ExportKeyingMaterial); err == nil {
					_, _ = conn.Write(material)
				}
			})
			conn, err := tlsDial(t, inner.Addr().String(), &tls.Config{ServerName: "localhost", RootCAs: s.devCA, MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{suite}})
			if err != nil {
				t.Fatal(err)
			}
			peer := make([]byte, 3*32)
			if _, err := io.ReadFull(conn, peer); err != nil {
				t.Fatal(err)
			}
			state := conn.ConnectionState()
			ours, err := exportAll(state.ExportKeyingMaterial)
			if err != nil {
				t.Fatal(err)
			}
			checkExported(t, ours, peer)
		})
	}
}
