package handshaker_test

// The client role: handshaker.Dial against stock crypto/tls servers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/handshaker/handshaker/clients/go/handshaker"
)

func TestNetHTTPClientOverDialFetchesFromCryptoTLSServer(t *testing.T) {
	s := needService(t)
	server := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s over TLS %#x with %s", r.URL.Path, r.TLS.Version, tls.CipherSuiteName(r.TLS.CipherSuite))
	}))
	server.TLS = &tls.Config{Certificates: []tls.Certificate{s.localhost}}
	server.StartTLS()
	defer server.Close()

	config := &handshaker.Config{ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	var dialed atomic.Pointer[handshaker.Conn]
	client := &http.Client{Timeout: ioTimeout, Transport: &http.Transport{
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := handshaker.Dial(ctx, network, addr, config)
			if err == nil {
				dialed.Store(conn.(*handshaker.Conn))
			}
			return conn, err
		},
	}}
	defer client.CloseIdleConnections()

	for _, path := range []string{"/first", "/second"} {
		resp, err := client.Get(server.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		state := dialed.Load().ConnectionState()
		want := fmt.Sprintf("%s over TLS 0x304 with %s", path, tls.CipherSuiteName(state.CipherSuite))
		if resp.StatusCode != http.StatusOK || string(body) != want {
			t.Fatalf("GET %s: %d %q, want 200 %q", path, resp.StatusCode, body, want)
		}
	}
	state := dialed.Load().ConnectionState()
	if !state.HandshakeComplete || state.Version != tls.VersionTLS13 {
		t.Errorf("state: complete %v version %#x", state.HandshakeComplete, state.Version)
	}
	if state.NegotiatedProtocol != "http/1.1" || state.ServerName != "localhost" {
		t.Errorf("ALPN %q, server name %q", state.NegotiatedProtocol, state.ServerName)
	}
	if len(state.PeerCertificates) == 0 || !slices.Contains(state.PeerCertificates[0].DNSNames, "localhost") {
		t.Errorf("peer certificates %v do not name localhost", state.PeerCertificates)
	}
	if _, err := state.PeerCertificates[0].Verify(x509Options(s)); err != nil {
		t.Errorf("the peer certificate does not chain to the dev CA: %v", err)
	}
}

func TestDialDefaultsServerNameToTheAddressHost(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	conn := dial(t, addr, nil)
	if got := conn.ConnectionState().ServerName; got != "127.0.0.1" {
		t.Errorf("server name %q, want the IP literal of the address", got)
	}
	roundTrip(t, conn, []byte("hello"))
}

func TestDialPresentsKeystoreCredentialForMutualTLS(t *testing.T) {
	s := needService(t)
	seen := make(chan []string, 1)
	addr := serveTLS(t, &tls.Config{
		Certificates: []tls.Certificate{s.localhost},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.devCA,
	}, nil, func(conn *tls.Conn) {
		seen <- conn.ConnectionState().PeerCertificates[0].DNSNames
		echo(conn)
	})
	conn := dial(t, addr, &handshaker.Config{Credential: "client"})
	roundTrip(t, conn, []byte("mutual"))
	if names := <-seen; !slices.Equal(names, []string{"client"}) {
		t.Errorf("the server saw client certificate names %v", names)
	}
	if conn.ConnectionState().SignatureScheme == 0 {
		t.Error("no CertificateVerify scheme for this side, though it sent a certificate")
	}
}

func TestDialWithoutClientCertificateGetsCertificateRequiredAlert(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{
		Certificates: []tls.Certificate{s.localhost},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    s.devCA,
	}, nil, echo)
	// In TLS 1.3 the client finishes before the server judges its
	// certificate, so the verdict arrives as an alert on the first read.
	conn := dial(t, addr, nil)
	_, err := conn.Read(make([]byte, 1))
	var alert *handshaker.AlertError
	if !errors.As(err, &alert) || alert.Alert != handshaker.AlertCertificateRequired || !alert.SentByPeer {
		t.Fatalf("read error %v, want certificate_required from the peer", err)
	}
	if _, err := conn.Write([]byte("x")); !errors.As(err, &alert) {
		t.Errorf("write after a fatal alert: %v, want the alert", err)
	}
}

func TestDialWithWrongTrustAnchorFailsWithUnknownCA(t *testing.T) {
	s := needService(t)
	serverErrs := make(chan error, 1)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, serverErrs, echo)

	_, err := dialErr(addr, &handshaker.Config{ServerName: "localhost", RootCAsPEM: unrelatedCAPEM(t)})
	var failure *handshaker.HandshakeError
	if !errors.As(err, &failure) {
		t.Fatalf("Dial error %v (%T), want a *HandshakeError", err, err)
	}
	if failure.Alert != handshaker.AlertUnknownCA || failure.SentByPeer || failure.Reason == "" {
		t.Errorf("got %+v, want unknown_ca raised by this side, with a reason", *failure)
	}
	if !strings.Contains(err.Error(), "unknown_ca (48)") {
		t.Errorf("error text %q does not name the alert", err)
	}
	if serverErr := <-serverErrs; serverErr == nil {
		t.Error("the server completed a handshake that the client failed")
	}
}

func TestDialWritesItsAlertToThePeerBeforeReturning(t *testing.T) {
	s := needService(t)
	serverErrs := make(chan error, 1)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, serverErrs, echo)
	if _, err := dialErr(addr, &handshaker.Config{ServerName: "localhost", RootCAsPEM: unrelatedCAPEM(t)}); err == nil {
		t.Fatal("Dial trusted a server outside its trust anchors")
	}
	// The server reads its handshake records under client_handshake_traffic_secret
	// by now, so the alert must be protected with it to be understood.
	if serverErr := <-serverErrs; serverErr == nil || !strings.Contains(serverErr.Error(), "remote error: tls: unknown certificate authority") {
		t.Errorf("the server's handshake error is %v, want the client's unknown_ca alert", serverErr)
	}
}

func TestDialFailsWithPeerAlertWhenNoALPNProtocolIsShared(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, NextProtos: []string{"http/1.1"}}, nil, echo)
	_, err := dialErr(addr, &handshaker.Config{NextProtos: []string{"h2"}})
	var failure *handshaker.HandshakeError
	if !errors.As(err, &failure) || failure.Alert != handshaker.AlertNoApplicationProtocol || !failure.SentByPeer {
		t.Fatalf("Dial error %v, want no_application_protocol sent by the peer", err)
	}
}

func TestDialNegotiatesALPN(t *testing.T) {
	s := needService(t)
	for _, tc := range []struct {
		name           string
		server, client []string
		want           string
	}{
		{"h2 preferred by the server", []string{"h2", "http/1.1"}, []string{"http/1.1", "h2"}, "h2"},
		{"only http/1.1 offered", []string{"h2", "http/1.1"}, []string{"http/1.1"}, "http/1.1"},
		{"none offered", []string{"h2", "http/1.1"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serverSaw := make(chan string, 1)
			addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, NextProtos: tc.server}, nil, func(conn *tls.Conn) {
				serverSaw <- conn.ConnectionState().NegotiatedProtocol
				echo(conn)
			})
			conn := dial(t, addr, &handshaker.Config{NextProtos: tc.client})
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("client state: ALPN %q, want %q", got, tc.want)
			}
			if got := <-serverSaw; got != tc.want {
				t.Errorf("server state: ALPN %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDialUsesEachCipherSuiteAndFullSizeRecords(t *testing.T) {
	s := needService(t)
	for _, suite := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			serverSuite := make(chan uint16, 1)
			sizes := &recordSizes{Listener: loopbackListener(t)}
			serveConns(t, tls.NewListener(sizes, &tls.Config{Certificates: []tls.Certificate{s.localhost}}), func(c net.Conn) {
				conn := c.(*tls.Conn)
				if conn.Handshake() == nil {
					serverSuite <- conn.ConnectionState().CipherSuite
					echo(conn)
				}
			})
			conn := dial(t, sizes.Addr().String(), &handshaker.Config{CipherSuites: []uint16{suite}})
			if got := conn.ConnectionState().CipherSuite; got != suite {
				t.Fatalf("client state: suite %#04x", got)
			}
			if got := <-serverSuite; got != suite {
				t.Fatalf("server state: suite %#04x", got)
			}
			message := randomBytes(t, 200_000)
			roundTrip(t, conn, message)
			// A full record: 2^14 bytes of data, its content type, a 16-byte tag.
			if longest := slices.Max(sizes.all()); longest != 1<<14+1+16 {
				t.Errorf("longest record from the client is %d bytes, want %d", longest, 1<<14+1+16)
			}
		})
	}
}

func TestDialCloseSendsCloseNotify(t *testing.T) {
	s := needService(t)
	received := make(chan string, 1)
	readErr := make(chan error, 1)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, func(conn *tls.Conn) {
		data, err := io.ReadAll(conn) // nil error only on close_notify
		received <- string(data)
		readErr <- err
	})
	conn := dial(t, addr, nil)
	if _, err := conn.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := <-received, <-readErr; got != "last words" || err != nil {
		t.Errorf("the server read %q, %v; want the data, then a clean EOF", got, err)
	}
	if _, err := conn.Write([]byte("more")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after Close: %v", err)
	}
}

func TestDialReadsEOFAfterPeerCloseNotify(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, func(conn *tls.Conn) {
		_, _ = conn.Write([]byte("goodbye"))
		_ = conn.Close()
	})
	conn := dial(t, addr, nil)
	data, err := io.ReadAll(conn)
	if err != nil || string(data) != "goodbye" {
		t.Fatalf("read %q, %v", data, err)
	}
	if n, err := conn.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Errorf("read after close_notify: %d, %v; want io.EOF again", n, err)
	}
}

func TestDialReportsTruncationWithoutCloseNotify(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, func(conn *tls.Conn) {
		_, _ = conn.Write([]byte("cut"))
		_ = conn.NetConn().Close()
	})
	conn := dial(t, addr, nil)
	data, err := io.ReadAll(conn)
	if string(data) != "cut" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("read %q, %v; want the data, then io.ErrUnexpectedEOF", data, err)
	}
}

func TestUpdateKeysFromClientKeepsDataFlowingWithCryptoTLSServer(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	conn := dial(t, addr, nil)
	roundTrip(t, conn, []byte("before any update"))
	for round := range 3 {
		// update_requested: the server answers with its own KeyUpdate, so the
		// echo comes back under the server's next keys.
		if err := conn.UpdateKeys(true); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, fmt.Appendf(nil, "after requested update %d", round))
		if err := conn.UpdateKeys(false); err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, randomBytes(t, 40_000))
	}
}

func TestExportKeyingMaterialMatchesCryptoTLSPeer(t *testing.T) {
	s := needService(t)
	for _, suite := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384} {
		t.Run(tls.CipherSuiteName(suite), func(t *testing.T) {
			addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, func(conn *tls.Conn) {
				state := conn.ConnectionState()
				material, err := state.ExportKeyingMaterial("EXPORTER-handshaker-test", []byte("context"), 48)
				if err == nil {
					_, _ = conn.Write(material)
				}
			})
			conn := dial(t, addr, &handshaker.Config{CipherSuites: []uint16{suite}})
			peer := make([]byte, 48)
			if _, err := io.ReadFull(conn, peer); err != nil {
				t.Fatal(err)
			}
			ours, err := conn.ExportKeyingMaterial("EXPORTER-handshaker-test", []byte("context"), 48)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ours, peer) {
				t.Error("exported keying material differs from the peer's")
			}
		})
	}
}

func TestKeyLogWriterGetsTheSecretsThePeerLogs(t *testing.T) {
	s := needService(t)
	var serverLog bytes.Buffer
	serverLogged := make(chan struct{})
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}, KeyLogWriter: &serverLog}, nil, func(conn *tls.Conn) {
		close(serverLogged)
		echo(conn)
	})
	var clientLog bytes.Buffer
	conn := dial(t, addr, &handshaker.Config{KeyLogWriter: &clientLog})
	roundTrip(t, conn, []byte("logged"))
	<-serverLogged
	ours := map[string]bool{}
	for scanner := bufio.NewScanner(&clientLog); scanner.Scan(); {
		ours[scanner.Text()] = true
	}
	lines := 0
	for scanner := bufio.NewScanner(&serverLog); scanner.Scan(); lines++ {
		if !ours[scanner.Text()] {
			t.Errorf("the peer logged a line we did not: %.40s...", scanner.Text())
		}
	}
	if lines < 4 {
		t.Errorf("the peer logged %d lines, want the four traffic secrets", lines)
	}
}

func TestDialHonoursContextDeadlineWhenPeerIsSilent(t *testing.T) {
	needService(t)
	ln := loopbackListener(t)
	serveConns(t, ln, func(conn net.Conn) { _, _ = io.Copy(io.Discard, conn) })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := handshaker.Dial(ctx, "tcp", ln.Addr().String(), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial error %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Dial returned after %v", elapsed)
	}
}

func TestServiceErrorsKeepTheirGRPCStatus(t *testing.T) {
	s := needService(t)
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	closed := loopbackListener(t)
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		name   string
		config *handshaker.Config
		want   codes.Code
	}{
		{"service not listening", &handshaker.Config{ServiceAddr: closedAddr}, codes.Unavailable},
		{"unknown credential", &handshaker.Config{Credential: "no-such-credential"}, codes.NotFound},
		{"unknown trust bundle", &handshaker.Config{TrustBundle: "no-such-bundle"}, codes.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dialErr(addr, tc.config)
			if got := status.Code(err); got != tc.want {
				t.Errorf("Dial error %v: status %v, want %v", err, got, tc.want)
			}
		})
	}
}

func TestDialReachesServiceOnUnixSocketAndWithDialOptions(t *testing.T) {
	s := needService(t)
	socket := filepath.Join(t.TempDir(), "handshaker.sock")
	stop, err := serve(s.bin, s.keystore, "unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addr := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{s.localhost}}, nil, echo)
	for _, config := range []*handshaker.Config{
		{ServiceAddr: "unix:" + socket},
		{ServiceAddr: "unix:" + socket, DialOptions: []grpc.DialOption{grpc.WithUserAgent("handshaker-go-test")}},
		{DialOptions: []grpc.DialOption{grpc.WithUserAgent("handshaker-go-test")}},
	} {
		conn := dial(t, addr, config)
		roundTrip(t, conn, []byte("service at "+config.ServiceAddr))
	}
}
