// Command fetch GETs a URL over a TLS connection whose handshake runs in the
// handshaker service, and prints the body.
//
//	go run ./examples/fetch -trust-bundle dev-ca https://localhost:8443/
//	go run ./examples/fetch -ca-file ca.pem -credential client https://127.0.0.1:8443/
//
// The service is at -service, else $HANDSHAKER_ADDR, else 127.0.0.1:50051.
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/handshaker/handshaker/clients/go/handshaker"
)

func main() {
	service := flag.String("service", "", "handshaker service address, host:port or unix:PATH")
	trustBundle := flag.String("trust-bundle", "", "keystore trust bundle that validates the server (default: the service's default)")
	caFile := flag.String("ca-file", "", "PEM file of trust anchors, instead of a trust bundle")
	credential := flag.String("credential", "", "keystore credential to present if the server asks for a client certificate")
	serverName := flag.String("server-name", "", "server name to send and check (default: the URL's host)")
	timeout := flag.Duration("timeout", 30*time.Second, "time limit for the whole request")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: fetch [flags] https://host[:port]/path")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	config := &handshaker.Config{
		ServiceAddr: *service,
		ServerName:  *serverName,
		NextProtos:  []string{"http/1.1"},
		TrustBundle: *trustBundle,
		Credential:  *credential,
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			fail(err)
		}
		config.RootCAsPEM = pem
	}
	if err := fetch(flag.Arg(0), config, *timeout); err != nil {
		fail(err)
	}
}

func fetch(url string, config *handshaker.Config, timeout time.Duration) error {
	var state handshaker.ConnectionState
	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				conn, err := handshaker.Dial(ctx, network, addr, config)
				if err != nil {
					return nil, err
				}
				state = conn.(*handshaker.Conn).ConnectionState()
				return conn, nil
			},
		},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	peer := "no certificate"
	if len(state.PeerCertificates) > 0 {
		peer = state.PeerCertificates[0].Subject.String()
	}
	fmt.Fprintf(os.Stderr, "%s; TLS 1.3, %s, %s, ALPN %q, server %s\n",
		resp.Status, tls.CipherSuiteName(state.CipherSuite), state.CurveID, state.NegotiatedProtocol, peer)
	_, err = io.Copy(os.Stdout, resp.Body)
	return err
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "fetch:", err)
	os.Exit(1)
}
