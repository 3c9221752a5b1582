// Command gopeer is the Go crypto/tls peer of the handshaker interop tests.
//
// In server mode it listens on 127.0.0.1:0, prints the port, accepts one
// connection, prints the negotiated parameters as JSON, answers one line with
// "echo: <line>" and exits. In client mode it connects, prints the negotiated
// parameters, sends one line and prints the echoed line as JSON.
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

type options struct {
	mode       string
	addr       string
	certFile   string
	keyFile    string
	caFile     string
	serverName string
	alpn       string
	curves     string
	clientAuth string
	tls13Only  bool
	tls12Only  bool
	message    string
	timeout    time.Duration
}

// negotiated is what both modes print once the handshake is done.
type negotiated struct {
	Version          string   `json:"version"`
	VersionID        uint16   `json:"version_id"`
	CipherSuite      string   `json:"cipher_suite"`
	CipherSuiteID    uint16   `json:"cipher_suite_id"`
	Curve            string   `json:"curve"`
	CurveID          uint16   `json:"curve_id"`
	ALPN             string   `json:"alpn"`
	ServerName       string   `json:"server_name"`
	HelloRetry       bool     `json:"hello_retry"`
	PeerCertificates []string `json:"peer_certificates"`
	VerifiedChains   int      `json:"verified_chains"`
}

var curveNames = map[string]tls.CurveID{
	"X25519MLKEM768":     tls.X25519MLKEM768,
	"SecP256r1MLKEM768":  tls.SecP256r1MLKEM768,
	"SecP384r1MLKEM1024": tls.SecP384r1MLKEM1024,
	"X25519":             tls.X25519,
	"P256":               tls.CurveP256,
	"P384":               tls.CurveP384,
	"P521":               tls.CurveP521,
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "", "server or client")
	flag.StringVar(&o.addr, "addr", "", "client: host:port to connect to")
	flag.StringVar(&o.certFile, "cert", "", "PEM certificate chain, leaf first")
	flag.StringVar(&o.keyFile, "key", "", "PEM private key of the leaf")
	flag.StringVar(&o.caFile, "ca", "", "PEM trust anchors: RootCAs (client) or ClientCAs (server)")
	flag.StringVar(&o.serverName, "servername", "", "client: name sent in SNI and verified")
	flag.StringVar(&o.alpn, "alpn", "", "comma-separated ALPN protocols")
	flag.StringVar(&o.curves, "curves", "", "comma-separated curve preferences (X25519MLKEM768,SecP256r1MLKEM768,SecP384r1MLKEM1024,X25519,P256,P384,P521)")
	flag.StringVar(&o.clientAuth, "clientauth", "none", "server: none, request or require")
	flag.BoolVar(&o.tls13Only, "tls13", true, "offer and accept TLS 1.3 only")
	flag.BoolVar(&o.tls12Only, "tls12", false, "offer and accept TLS 1.2 only (overrides -tls13)")
	flag.StringVar(&o.message, "message", "hello from go", "client: line to send")
	flag.DurationVar(&o.timeout, "timeout", 20*time.Second, "deadline for the whole exchange")
	flag.Parse()

	var err error
	switch o.mode {
	case "server":
		err = runServer(o)
	case "client":
		err = runClient(o)
	default:
		err = errors.New("-mode must be server or client")
	}
	if err != nil {
		report(map[string]string{"error": err.Error()})
		os.Exit(1)
	}
}

func report(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
}

func baseConfig(o options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case o.tls12Only:
		cfg.MaxVersion = tls.VersionTLS12
	case o.tls13Only:
		cfg.MinVersion = tls.VersionTLS13
	}
	if o.certFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("loading key pair: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if o.alpn != "" {
		cfg.NextProtos = strings.Split(o.alpn, ",")
	}
	if o.curves != "" {
		for _, name := range strings.Split(o.curves, ",") {
			id, ok := curveNames[name]
			if !ok {
				return nil, fmt.Errorf("unknown curve %q", name)
			}
			cfg.CurvePreferences = append(cfg.CurvePreferences, id)
		}
	}
	return cfg, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("no certificates in %s", path)
	}
	return pool, nil
}

func describe(cs tls.ConnectionState) negotiated {
	n := negotiated{
		Version:          tls.VersionName(cs.Version),
		VersionID:        cs.Version,
		CipherSuite:      tls.CipherSuiteName(cs.CipherSuite),
		CipherSuiteID:    cs.CipherSuite,
		Curve:            cs.CurveID.String(),
		CurveID:          uint16(cs.CurveID),
		ALPN:             cs.NegotiatedProtocol,
		ServerName:       cs.ServerName,
		HelloRetry:       cs.HelloRetryRequest,
		PeerCertificates: []string{},
		VerifiedChains:   len(cs.VerifiedChains),
	}
	for _, c := range cs.PeerCertificates {
		n.PeerCertificates = append(n.PeerCertificates, c.Subject.CommonName)
	}
	return n
}

func runServer(o options) error {
	cfg, err := baseConfig(o)
	if err != nil {
		return err
	}
	switch o.clientAuth {
	case "none":
		cfg.ClientAuth = tls.NoClientCert
	case "request":
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	case "require":
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	default:
		return fmt.Errorf("unknown client auth mode %q", o.clientAuth)
	}
	if o.caFile != "" {
		if cfg.ClientCAs, err = loadPool(o.caFile); err != nil {
			return err
		}
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer listener.Close()
	fmt.Println(listener.Addr().(*net.TCPAddr).Port)

	raw, err := listener.Accept()
	if err != nil {
		return err
	}
	conn := tls.Server(raw, cfg)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(o.timeout)); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	report(describe(conn.ConnectionState()))

	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the client's line: %w", err)
	}
	if _, err := fmt.Fprintf(conn, "echo: %s", line); err != nil {
		return fmt.Errorf("writing the echo: %w", err)
	}
	report(map[string]string{"received": strings.TrimSuffix(line, "\n")})
	return conn.Close()
}

func runClient(o options) error {
	cfg, err := baseConfig(o)
	if err != nil {
		return err
	}
	cfg.ServerName = o.serverName
	if o.caFile != "" {
		if cfg.RootCAs, err = loadPool(o.caFile); err != nil {
			return err
		}
	}
	dialer := &net.Dialer{Timeout: o.timeout}
	raw, err := dialer.Dial("tcp", o.addr)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, cfg)
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(o.timeout)); err != nil {
		return err
	}
	if err := conn.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	report(describe(conn.ConnectionState()))

	if _, err := fmt.Fprintf(conn, "%s\n", o.message); err != nil {
		return fmt.Errorf("writing the line: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	report(map[string]string{"echo": strings.TrimSuffix(line, "\n")})
	return conn.Close()
}
