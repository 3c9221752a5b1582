package keyless_test

// Stock crypto/tls servers whose only certificate is a keyless.Certificate,
// fetched by curl and openssl s_client: every handshake that completes had
// its signature (or, for the RSA key exchange, its premaster secret) from the
// service, since the private key is nowhere in this process.

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// serveHTTPS runs an HTTPS server with config on loopback until the test
// ends; each answer names the TLS version and cipher suite it was sent over.
func serveHTTPS(t *testing.T, config *tls.Config) (port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "keyless over %s %s\n", tls.VersionName(r.TLS.Version), tls.CipherSuiteName(r.TLS.CipherSuite))
		}),
		TLSConfig: config,
		// A client refused on purpose is not worth a log line.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	go func() { _ = server.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { server.Close() })
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return port
}

func command(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("no %s on PATH", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func curl(t *testing.T, s *testService, port string, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"--silent", "--show-error", "--cacert", s.devCAFile,
		"--resolve", "localhost:" + port + ":127.0.0.1", "https://localhost:" + port + "/"}, args...)
	return command(t, nil, "curl", args...)
}

func sClient(t *testing.T, s *testService, port string, args ...string) (string, error) {
	t.Helper()
	args = append([]string{"s_client", "-connect", "127.0.0.1:" + port, "-servername", "localhost",
		"-CAfile", s.devCAFile, "-verify_return_error", "-verify_hostname", "localhost", "-ign_eof"}, args...)
	return command(t, []byte("GET / HTTP/1.0\r\nHost: localhost\r\n\r\n"), "openssl", args...)
}

func TestCryptoTLSServerWithAKeylessCertificate(t *testing.T) {
	s := needService(t)
	for _, credential := range []string{credECDSA, credRSA} {
		t.Run(credential, func(t *testing.T) {
			port := serveHTTPS(t, &tls.Config{Certificates: []tls.Certificate{certificate(t, s, credential)}})
			for _, tc := range []struct {
				client  string
				version string
				run     func() (string, error)
			}{
				{"curl", "TLS 1.3", func() (string, error) { return curl(t, s, port, "--tlsv1.3") }},
				{"curl --tls-max 1.2", "TLS 1.2", func() (string, error) { return curl(t, s, port, "--tls-max", "1.2") }},
				{"s_client -tls1_3", "TLS 1.3", func() (string, error) { return sClient(t, s, port, "-tls1_3") }},
				{"s_client -tls1_2", "TLS 1.2", func() (string, error) { return sClient(t, s, port, "-tls1_2") }},
			} {
				out, err := tc.run()
				if err != nil {
					t.Fatalf("%s: %v\n%s", tc.client, err, out)
				}
				if !strings.Contains(out, "keyless over "+tc.version+" ") {
					t.Fatalf("%s: not an answer over %s:\n%s", tc.client, tc.version, out)
				}
				if tc.version == "TLS 1.2" && !strings.Contains(out, "ECDHE") {
					t.Fatalf("%s: TLS 1.2 without ECDHE (the key signed nothing):\n%s", tc.client, out)
				}
			}
		})
	}
}

func TestRSAKeyExchangeThroughTheDecrypter(t *testing.T) {
	s := needService(t)
	suites := []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	port := serveHTTPS(t, &tls.Config{
		Certificates: []tls.Certificate{certificate(t, s, credRSA)},
		MaxVersion:   tls.VersionTLS12,
		// Listing the RSA key exchange is what turns it on in crypto/tls.
		CipherSuites: suites,
	})
	out, err := sClient(t, s, port, "-tls1_2", "-cipher", "AES128-GCM-SHA256")
	if err != nil {
		t.Fatalf("s_client: %v\n%s", err, out)
	}
	if !strings.Contains(out, "keyless over TLS 1.2 TLS_RSA_WITH_AES_128_GCM_SHA256") {
		t.Fatalf("not the RSA key exchange:\n%s", out)
	}

	// A Go client too, which also checks the server's Finished: it holds
	// only if the service's premaster secret was the client's.
	conn, err := tls.Dial("tcp", "127.0.0.1:"+port, &tls.Config{
		RootCAs: s.devCA, ServerName: "localhost", CipherSuites: suites[:1], MaxVersion: tls.VersionTLS12,
	})
	if err != nil {
		t.Fatalf("a Go client with the RSA key exchange: %v", err)
	}
	defer conn.Close()
	if suite := conn.ConnectionState().CipherSuite; suite != tls.TLS_RSA_WITH_AES_128_GCM_SHA256 {
		t.Fatalf("cipher suite %s", tls.CipherSuiteName(suite))
	}

	// An ECDSA key cannot decrypt, so its certificate offers no RSA key
	// exchange: a client that wants only that has nothing to agree on.
	port = serveHTTPS(t, &tls.Config{
		Certificates: []tls.Certificate{certificate(t, s, credECDSA)},
		MaxVersion:   tls.VersionTLS12,
		CipherSuites: suites,
	})
	out, err = sClient(t, s, port, "-tls1_2", "-cipher", "AES128-GCM-SHA256")
	if err == nil || strings.Contains(out, "keyless over") || !strings.Contains(out, "alert number 40") {
		t.Fatalf("an ECDSA credential served the RSA key exchange (or failed otherwise than handshake_failure):\n%s", out)
	}
}
