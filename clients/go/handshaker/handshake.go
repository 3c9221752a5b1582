package handshaker

// The handshake relay: bytes between the peer and the service (a Handshake
// stream, or a connection on a shared Multiplex stream) until the service
// reports COMPLETE (keys installed here) or FAILED (its alert record already
// written to the peer).

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

func (c *Conn) runHandshake(ctx context.Context) (err error) {
	if ctx.Done() != nil {
		// Interrupt blocked socket I/O when ctx ends, and report ctx's error.
		done := make(chan struct{})
		interrupted := make(chan error, 1)
		defer func() {
			close(done)
			if ctxErr := <-interrupted; ctxErr != nil {
				err = ctxErr
			}
		}()
		go func() {
			select {
			case <-ctx.Done():
				_ = c.conn.SetDeadline(time.Unix(1, 0))
				interrupted <- ctx.Err()
			case <-done:
				interrupted <- nil
			}
		}()
	}

	first := &pb.HandshakeRequest{}
	if c.isClient {
		options, err := c.config.clientOptions(c.serverName)
		if err != nil {
			return err
		}
		first.Start = &pb.HandshakeRequest_Client{Client: options}
	} else {
		options, err := c.config.serverOptions()
		if err != nil {
			return err
		}
		first.Start = &pb.HandshakeRequest_Server{Server: options}
		// The client speaks first; its first bytes ride with the start.
		if first.InBytes, err = c.readHandshakeBytes(); err != nil {
			return err
		}
	}
	var service exchanger
	if c.config.Multiplex {
		m, err := c.config.multiplexer()
		if err != nil {
			return err
		}
		service = m.connect()
	} else {
		if service, err = openHandshakeStream(ctx, c.config); err != nil {
			return err
		}
	}
	defer service.close()
	request, fed := first, first.InBytes
	for {
		response, err := service.exchange(ctx, request)
		if err != nil {
			return err
		}
		step := response.GetStep()
		if out := step.GetOutBytes(); len(out) > 0 {
			if _, err := c.conn.Write(out); err != nil && step.GetState() != pb.HandshakeState_HANDSHAKE_STATE_FAILED {
				return fmt.Errorf("handshaker: handshake: %w", err)
			}
		}
		switch step.GetState() {
		case pb.HandshakeState_HANDSHAKE_STATE_NEED_INPUT:
			if fed, err = c.readHandshakeBytes(); err != nil {
				return err
			}
			request = &pb.HandshakeRequest{InBytes: fed}
		case pb.HandshakeState_HANDSHAKE_STATE_COMPLETE:
			consumed := step.GetBytesConsumed()
			if consumed > uint64(len(fed)) {
				return contractError("bytes_consumed exceeds the bytes fed")
			}
			return c.establish(response.GetKeys(), step.GetResult(), fed[consumed:])
		case pb.HandshakeState_HANDSHAKE_STATE_FAILED:
			failure := step.GetFailure()
			if failure == nil || failure.GetAlert() > 255 {
				return contractError("FAILED without a valid failure")
			}
			return &HandshakeError{
				Alert:      uint8(failure.GetAlert()),
				Reason:     failure.GetReason(),
				SentByPeer: failure.GetSentByPeer(),
			}
		default:
			return contractError(fmt.Sprintf("unknown handshake state %v", step.GetState()))
		}
	}
}

// exchanger is the service side of one handshake: a Handshake stream of its
// own, or a connection on a shared Multiplex stream.
type exchanger interface {
	// exchange sends one request and returns the service's answer to it.
	exchange(ctx context.Context, request *pb.HandshakeRequest) (*pb.HandshakeResponse, error)
	// close releases the handshake's resources in the service, if any are left.
	close()
}

// handshakeStream is a Handshake stream, which carries one connection.
type handshakeStream struct {
	stream pb.Handshaker_HandshakeClient
	cancel context.CancelFunc
}

func openHandshakeStream(ctx context.Context, config *Config) (*handshakeStream, error) {
	client, err := config.handshakerClient()
	if err != nil {
		return nil, err
	}
	streamCtx, cancel := context.WithCancel(ctx)
	stream, err := client.Handshake(streamCtx)
	if err != nil {
		cancel()
		return nil, serviceError(err)
	}
	return &handshakeStream{stream: stream, cancel: cancel}, nil
}

func (h *handshakeStream) exchange(_ context.Context, request *pb.HandshakeRequest) (*pb.HandshakeResponse, error) {
	// The stream's context is the handshake's, so ctx ending ends Recv too.
	if err := h.stream.Send(request); err != nil {
		if err == io.EOF {
			// The service ended the stream; Recv has its status.
			_, err = h.stream.Recv()
		}
		return nil, serviceError(err)
	}
	response, err := h.stream.Recv()
	if err != nil {
		return nil, serviceError(err)
	}
	return response, nil
}

// close ends the stream, which frees the connection in the service.
func (h *handshakeStream) close() { h.cancel() }

func serviceError(err error) error {
	if err == io.EOF {
		return contractError("the service ended the stream before the handshake finished")
	}
	return fmt.Errorf("handshaker: service: %w", err)
}

func contractError(what string) error {
	return errors.New("handshaker: unexpected answer from the service: " + what)
}

func (c *Conn) readHandshakeBytes() ([]byte, error) {
	buf := make([]byte, handshakeReadSize)
	n, err := c.conn.Read(buf)
	if n > 0 {
		return buf[:n], nil
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return nil, fmt.Errorf("handshaker: handshake: reading from the peer: %w", err)
}

// establish installs the keys of a COMPLETE handshake; leftover holds the
// peer's first records, which arrived behind its last handshake flight.
func (c *Conn) establish(keys *pb.SessionKeys, summary *pb.HandshakeSummary, leftover []byte) error {
	if keys == nil {
		return contractError("COMPLETE without keys")
	}
	var suiteID uint16
	var err error
	switch keys.GetVersion() {
	case tls.VersionTLS13:
		suiteID, err = c.installKeys13(keys)
	case tls.VersionTLS12:
		suiteID, err = c.installKeys12(keys)
	default:
		err = contractError(fmt.Sprintf("version %#04x", keys.GetVersion()))
	}
	if err != nil {
		return err
	}
	c.in.raw = append(make([]byte, 0, 2*(recordHeaderLen+maxCiphertext)), leftover...)
	c.out.maxFragment = maxPlaintext
	if limit := keys.GetPeerRecordSizeLimit(); limit > 0 && limit < maxPlaintext {
		c.out.maxFragment = int(limit)
	}
	if c.config.KeyLogWriter != nil {
		for _, line := range keys.GetKeylog() {
			if _, err := io.WriteString(c.config.KeyLogWriter, strings.TrimSuffix(line, "\n")+"\n"); err != nil {
				return fmt.Errorf("handshaker: writing the key log: %w", err)
			}
		}
	}
	var peer []*x509.Certificate
	for _, der := range keys.GetPeer().GetChainDer() {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			reason := "the peer's certificate does not parse: " + err.Error()
			c.sendAlert(AlertBadCertificate, reason)
			return &HandshakeError{Alert: AlertBadCertificate, Reason: reason}
		}
		peer = append(peer, cert)
	}
	c.state = ConnectionState{
		Version:             uint16(keys.GetVersion()),
		HandshakeComplete:   true,
		DidResume:           keys.GetResumed(),
		CipherSuite:         suiteID,
		CurveID:             tls.CurveID(keys.GetGroup()),
		NegotiatedProtocol:  keys.GetAlpnProtocol(),
		ServerName:          keys.GetServerName(),
		HelloRetryRequest:   summary.GetHelloRetry(),
		SignatureScheme:     tls.SignatureScheme(summary.GetSignatureScheme()),
		PeerSignatureScheme: tls.SignatureScheme(summary.GetPeerSignatureScheme()),
		PeerCertificates:    peer,
	}
	return nil
}

// installKeys13 installs TLS 1.3 keys: records of RFC 8446 section 5.2.
func (c *Conn) installKeys13(keys *pb.SessionKeys) (uint16, error) {
	suite := cipherSuiteByID(uint16(keys.GetCipherSuite()))
	if suite == nil || keys.GetCipherSuite() > 0xffff {
		return 0, contractError(fmt.Sprintf("unsupported TLS 1.3 cipher suite %#04x", keys.GetCipherSuite()))
	}
	read, err := newHalfConn(suite, keys.GetRead())
	if err != nil {
		return 0, contractError(err.Error())
	}
	write, err := newHalfConn(suite, keys.GetWrite())
	if err != nil {
		return 0, contractError(err.Error())
	}
	c.suite = suite
	c.exporterMasterSecret = keys.GetExporterMasterSecret()
	c.in.hc, c.out.hc = read, write
	return suite.id, nil
}

// installKeys12 installs TLS 1.2 keys: AEAD records of RFC 5246 section
// 6.2.3.3, the fixed IVs of RFC 5288 and RFC 7905, and the RFC 5705
// exporter's inputs from SessionKeys.tls12.
func (c *Conn) installKeys12(keys *pb.SessionKeys) (uint16, error) {
	suite := tls12SuiteByID(uint16(keys.GetCipherSuite()))
	if suite == nil || keys.GetCipherSuite() > 0xffff {
		return 0, contractError(fmt.Sprintf("unsupported TLS 1.2 cipher suite %#04x", keys.GetCipherSuite()))
	}
	read, err := newHalfConn12(suite, keys.GetRead())
	if err != nil {
		return 0, contractError(err.Error())
	}
	write, err := newHalfConn12(suite, keys.GetWrite())
	if err != nil {
		return 0, contractError(err.Error())
	}
	session := keys.GetTls12()
	c.tls12 = &tls12Session{
		suite:                suite,
		masterSecret:         session.GetMasterSecret(),
		clientRandom:         session.GetClientRandom(),
		serverRandom:         session.GetServerRandom(),
		extendedMasterSecret: session.GetExtendedMasterSecret(),
	}
	c.in.hc, c.out.hc = read, write
	return suite.id, nil
}
