package handshaker_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/handshaker/handshaker/clients/go/handshaker"
)

// ioTimeout bounds every socket a test opens, so that a broken peer fails
// the test instead of hanging it.
const ioTimeout = 20 * time.Second

func loopbackListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveConns accepts connections on ln and runs serve on each in its own
// goroutine until the test ends; then it closes ln and waits for them.
func serveConns(t *testing.T, ln net.Listener, serve func(net.Conn)) {
	t.Helper()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetDeadline(time.Now().Add(ioTimeout))
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
}

// serveTLS runs a crypto/tls server on loopback; serve gets each connection
// after its handshake (a failed handshake goes to handshakeErrs when given).
func serveTLS(t *testing.T, config *tls.Config, handshakeErrs chan<- error, serve func(*tls.Conn)) string {
	t.Helper()
	ln := loopbackListener(t)
	serveConns(t, tls.NewListener(ln, config), func(conn net.Conn) {
		tlsConn := conn.(*tls.Conn)
		err := tlsConn.Handshake()
		if handshakeErrs != nil {
			handshakeErrs <- err
		}
		if err == nil {
			serve(tlsConn)
		}
	})
	return ln.Addr().String()
}

func echo(conn *tls.Conn) { _, _ = io.Copy(conn, conn) }

// dial runs handshaker.Dial with a bounded context and closes the connection
// when the test ends.
func dial(t *testing.T, addr string, config *handshaker.Config) *handshaker.Conn {
	t.Helper()
	conn, err := dialErr(addr, config)
	if err != nil {
		t.Fatalf("Dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func dialErr(addr string, config *handshaker.Config) (*handshaker.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	conn, err := handshaker.Dial(ctx, "tcp", addr, config)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(ioTimeout))
	return conn.(*handshaker.Conn), nil
}

// roundTrip writes message and expects an echo of it.
func roundTrip(t *testing.T, conn net.Conn, message []byte) {
	t.Helper()
	errs := make(chan error, 1)
	go func() {
		_, err := conn.Write(message)
		errs <- err
	}()
	got := make([]byte, len(message))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("reading the echo of %d bytes: %v", len(message), err)
	}
	if err := <-errs; err != nil {
		t.Fatalf("writing %d bytes: %v", len(message), err)
	}
	if !bytes.Equal(got, message) {
		t.Fatalf("echo of %d bytes differs", len(message))
	}
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// unrelatedCA is a fresh CA that issued nothing the service holds.
type unrelatedCA struct {
	pem  []byte
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newUnrelatedCA(t *testing.T) *unrelatedCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "unrelated test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &unrelatedCA{pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cert: cert, key: key}
}

func unrelatedCAPEM(t *testing.T) []byte { return newUnrelatedCA(t).pem }

// clientCertificate issues a client certificate for name.
func (ca *unrelatedCA) clientCertificate(t *testing.T, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// recordSizes wraps a listener's connections and records the length of every
// TLS record read from them.
type recordSizes struct {
	net.Listener
	mu      sync.Mutex
	lengths []int
}

func (r *recordSizes) Accept() (net.Conn, error) {
	conn, err := r.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordSizeConn{Conn: conn, sizes: r}, nil
}

func (r *recordSizes) all() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.lengths...)
}

type recordSizeConn struct {
	net.Conn
	sizes   *recordSizes
	header  []byte
	pending int
}

func (c *recordSizeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	for data := b[:n]; len(data) > 0; {
		if c.pending > 0 {
			skip := min(c.pending, len(data))
			c.pending -= skip
			data = data[skip:]
			continue
		}
		need := 5 - len(c.header)
		take := min(need, len(data))
		c.header = append(c.header, data[:take]...)
		data = data[take:]
		if len(c.header) == 5 {
			c.pending = int(c.header[3])<<8 | int(c.header[4])
			c.sizes.mu.Lock()
			c.sizes.lengths = append(c.sizes.lengths, c.pending)
			c.sizes.mu.Unlock()
			c.header = c.header[:0]
		}
	}
	return n, err
}

// coalescingConn holds back what is written until the next Read, so that a
// TLS client's Finished and its first application record reach the server
// in one segment.
type coalescingConn struct {
	net.Conn
	pending []byte
}

func (c *coalescingConn) Write(b []byte) (int, error) {
	c.pending = append(c.pending, b...)
	return len(b), nil
}

func (c *coalescingConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		_, err := c.Conn.Write(c.pending)
		c.pending = nil
		if err != nil {
			return 0, err
		}
	}
	return c.Conn.Read(b)
}

func x509Options(s *testService) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: s.devCA}
}
