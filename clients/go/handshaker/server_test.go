package handshaker_test

// The server role: handshaker.NewListener serving stock crypto/tls clients,
// and handshaker on both ends.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/handshaker/handshaker/clients/go/handshaker"
)

type connKey struct{}

// serveHTTP runs an http.Server on l until the test ends.
func serveHTTP(t *testing.T, l net.Listener, handler http.HandlerFunc) {
	t.Helper()
	server := &http.Server{
		Handler:     handler,
		ReadTimeout: ioTimeout,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = server.Serve(l)
	}()
	t.Cleanup(func() {
		server.Close()
		<-done
	})
}

func cryptoTLSClient(s *testService, config *tls.Config) *http.Client {
	config.RootCAs = s.devCA
	return &http.Client{Timeout: ioTimeout, Transport: &http.Transport{TLSClientConfig: config}}
}

func TestCryptoTLSClientFetchesFromHTTPServerOnNewListener(t *testing.T) {
	s := needService(t)
	inner := loopbackListener(t)
	serveHTTP(t, handshaker.NewListener(inner, &handshaker.Config{Credential: "localhost", NextProtos: []string{"http/1.1"}}),
		func(w http.ResponseWriter, r *http.Request) {
			state := r.Context().Value(connKey{}).(*handshaker.Conn).ConnectionState()
			fmt.Fprintf(w, "%s for %s via %s", r.URL.Path, state.ServerName, state.NegotiatedProtocol)
		})
	client := cryptoTLSClient(s, &tls.Config{ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	defer client.CloseIdleConnections()

	resp, err := client.Get("https://" + inner.Addr().String() + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/hello for localhost via http/1.1"; resp.StatusCode != http.StatusOK || string(body) != want {
		t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
	}
	if resp.TLS.Version != tls.VersionTLS13 || !slices.Contains(resp.TLS.PeerCertificates[0].DNSNames, "localhost") {
		t.Errorf("client state: version %#x, certificate names %v", resp.TLS.Version, resp.TLS.PeerCertificates[0].DNSNames)
	}
}

// serveEcho runs an echo server on a handshaker listener; each connection's
// state (or handshake error) goes to states.
func serveEcho(t *testing.T, config *handshaker.Config, states chan<- handshaker.ConnectionState, errs chan<- error) string {
	t.Helper()
	inner := loopbackListener(t)
	serveConns(t, handshaker.NewListener(inner, config), func(c net.Conn) {
		conn := c.(*handshaker.Conn)
		if err := conn.Handshake(); err != nil {
			if errs != nil {
				errs <- err
			}
			return
		}
		if states != nil {
			states <- conn.ConnectionState()
		}
		_, _ = io.Copy(conn, conn)
	})
	return inner.Addr().String()
}

func tlsDial(t *testing.T, addr string, config *tls.Config) (*tls.Conn, error) {
	t.Helper()
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: ioTimeout}, Config: config}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	return conn.(*tls.Conn), nil
}

func TestNewListenerRequiresAndVerifiesClientCertificates(t *testing.T) {
	s := needService(t)
	states := make(chan handshaker.ConnectionState, 1)
	errs := make(chan error, 1)
	addr := serveEcho(t, &handshaker.Config{Credential: "localhost", ClientAuth: handshaker.ClientAuthRequired}, states, errs)

	t.Run("with a certificate from the dev CA", func(t *testing.T) {
		conn, err := tlsDial(t, addr, &tls.Config{ServerName: "localhost", RootCAs: s.devCA, Certificates: []tls.Certificate{s.client}})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, []byte("mutual"))
		state := <-states
		if len(state.PeerCertificates) == 0 || !slices.Equal(state.PeerCertificates[0].DNSNames, []string{"client"}) {
			t.Errorf("the server saw peer certificates %v", state.PeerCertificates)
		}
		if state.PeerSignatureScheme == 0 {
			t.Error("no peer CertificateVerify scheme")
		}
	})

	t.Run("without a certificate", func(t *testing.T) {
		conn, err := tlsDial(t, addr, &tls.Config{ServerName: "localhost", RootCAs: s.devCA})
		if err == nil {
			// The TLS 1.3 client finishes first; the verdict comes on read.
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Errorf("client error %v, want the certificate_required alert", err)
		}
		var failure *handshaker.HandshakeError
		if err := <-errs; !errors.As(err, &failure) || failure.Alert != handshaker.AlertCertificateRequired || failure.SentByPeer {
			t.Errorf("server handshake error %v, want certificate_required raised by this side", err)
		}
	})

	t.Run("with a certificate from another CA", func(t *testing.T) {
		conn, err := tlsDial(t, addr, &tls.Config{ServerName: "localhost", RootCAs: s.devCA, Certificates: []tls.Certificate{newUnrelatedCA(t).clientCertificate(t, "stranger")}})
		if err == nil {
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "remote error: tls: unknown certificate authority") {
			t.Errorf("client error %v, want the unknown_ca alert", err)
		}
		var failure *handshaker.HandshakeError
		if err := <-errs; !errors.As(err, &failure) || failure.Alert != handshaker.AlertUnknownCA || failure.SentByPeer {
			t.Errorf("server handshake error %v, want unknown_ca raised by this side", err)
		}
	})

	t.Run("the listener serves on after a failed handshake", func(t *testing.T) {
		conn, err := tlsDial(t, addr, &tls.Config{ServerName: "localhost", RootCAs: s.devCA, Certificates: []tls.Certificate{s.client}})
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, conn, []byte("still here"))
		<-states
	})
}

func TestNewListenerReportsTheAlertOfAClientThatDistrustsIt(t *testing.T) {
	needService(t)
	errs := make(chan error, 1)
	addr := serveEcho(t, &handshaker.Config{Credential: "localhost"}, nil, errs)
	_, clientErr := tlsDial(t, addr, &tls.Config{ServerName: "localhost"}) // system roots: no dev CA
	if clientErr == nil {
		t.Fatal("a client without the dev CA accepted the server")
	}
	var failure *handshaker.HandshakeError
	err := <-errs
	if !errors.As(err, &failure) || !failure.SentByPeer || failure.Alert != handshaker.AlertBadCertificate {
		t.Fatalf("server handshake error %v, want bad_certificate sent by the peer", err)
	}
}

func TestNewListenerNegotiatesALPN(t *testing.T) {
	s := needService(t)
	for _, tc := range []struct {
		name           string
		server, client []string
		want           string
	}{
		{"h2", []string{"h2"}, []string{"http/1.1", "h2"}, "h2"},
		{"http/1.1", []string{"http/1.1"}, []string{"h2", "http/1.1"}, "http/1.1"},
		{"client offers none", []string{"h2", "http/1.1"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			states := make(chan handshaker.ConnectionState, 1)
			addr := serveEcho(t, &handshaker.Config{Credential: "localhost", NextProtos: tc.server}, states, nil)
			conn, err := tlsDial(t, addr, &tls.Config{ServerName: "localhost", RootCAs: s.devCA, NextProtos: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			if got := conn.ConnectionState().NegotiatedProtocol; got != tc.want {
				t.Errorf("client state: ALPN %q, want %q", got, tc.want)
			}
			roundTrip(t, conn, []byte("alpn"))
			if got := (<-states).NegotiatedProtocol; got != tc.want {
				t.Errorf("server state: ALPN %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewListenerDeliversApplicationDataThatArrivedWithFinished(t *testing.T) {
	s := needService(t)
	addr := serveEcho(t, &handshaker.Config{Credential: "localhost"}, nil, nil)
	raw, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(ioTimeout))
	conn := tls.Client(&coalescingConn{Conn: raw}, &tls.Config{ServerName: "localhost", RootCAs: s.devCA})
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	// The client's Finished is still held back; this record joins it, and
	// both go out on the next Read.
	if _, err := conn.Write([]byte("right behind Finished")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("right behind Finished"))
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "right behind Finished" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

func TestUpdateKeysFromServerKeepsDataFlowingWithCryptoTLSClient(t *testing.T) {
	s := needService(t)
	inner := loopbackListener(t)
	serveConns(t, handshaker.NewListener(inner, &handshaker.Config{Credential: "localhost"}), func(c net.Conn) {
		conn := c.(*handshaker.Conn)
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			// Each echo goes out under fresh keys, and asks the client for its own update.
			if conn.UpdateKeys(true) != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	conn, err := tlsDial(t, inner.Addr().String(), &tls.Config{ServerName: "localhost", RootCAs: s.devCA})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		roundTrip(t, conn, fmt.Appendf(nil, "round %d", round))
	}
}

func TestHandshakerOnBothEnds(t *testing.T) {
	needService(t)
	serverStates := make(chan handshaker.ConnectionState, 1)
	inner := loopbackListener(t)
	serveConns(t, handshaker.NewListener(inner, &handshaker.Config{
		Credential: "localhost",
		NextProtos: []string{"h2", "http/1.1"},
		ClientAuth: handshaker.ClientAuthRequired,
	}), func(c net.Conn) {
		conn := c.(*handshaker.Conn)
		if conn.Handshake() != nil {
			return
		}
		serverStates <- conn.ConnectionState()
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			if n > 1 && conn.UpdateKeys(true) != nil {
				return
			}
			if _, err := conn.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	conn := dial(t, inner.Addr().String(), &handshaker.Config{
		ServerName: "localhost",
		Credential: "client",
		NextProtos: []string{"http/1.1", "h2"},
	})
	for range 3 {
		roundTrip(t, conn, randomBytes(t, 50_000))
		if err := conn.UpdateKeys(true); err != nil {
			t.Fatal(err)
		}
	}
	client, server := conn.ConnectionState(), <-serverStates
	if client.NegotiatedProtocol != "h2" || server.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN: client %q, server %q", client.NegotiatedProtocol, server.NegotiatedProtocol)
	}
	if client.CipherSuite != server.CipherSuite || client.CurveID != server.CurveID {
		t.Errorf("client and server disagree: %+v vs %+v", client, server)
	}
	if !slices.Equal(server.PeerCertificates[0].DNSNames, []string{"client"}) {
		t.Errorf("server saw %v", server.PeerCertificates[0].DNSNames)
	}
}
