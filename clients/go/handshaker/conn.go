package handshaker

// Conn: the net.Conn over the TLS 1.3 or TLS 1.2 record layer after the
// handshake. Reads handle alerts and post-handshake messages (TLS 1.3:
// NewSessionTicket, KeyUpdate; TLS 1.2: see conn12.go); writes fragment to
// the peer's limit; Close sends close_notify.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// A new KeyUpdate well before AES-GCM's limit of 2^24.5 full-size records
	// under one key (RFC 8446 section 5.5).
	rekeyAfterRecords = 1 << 24
	// Application data is sealed in batches of about this many bytes per write.
	writeBatch = 64 << 10
	// The largest post-handshake message we buffer; a NewSessionTicket is at
	// most 2^16-1 ticket bytes plus 2^16-2 extension bytes.
	maxPostHandshakeMessage = 1 << 18
	// How long Close waits to send close_notify.
	closeNotifyTimeout = 5 * time.Second
	// Bytes read from the socket at a time while the handshake runs.
	handshakeReadSize = 32 << 10
)

// ConnectionState is what a completed handshake negotiated.
type ConnectionState struct {
	// Version is the TLS version, tls.VersionTLS13 or tls.VersionTLS12.
	Version           uint16
	HandshakeComplete bool
	DidResume         bool
	// CipherSuite is the negotiated suite, e.g. tls.TLS_AES_128_GCM_SHA256
	// or tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256.
	CipherSuite uint16
	// CurveID is the key exchange group.
	CurveID tls.CurveID
	// NegotiatedProtocol is the ALPN protocol; empty when none was negotiated.
	NegotiatedProtocol string
	// ServerName is the SNI the client sent.
	ServerName string
	// HelloRetryRequest is true when the server asked for another key share.
	HelloRetryRequest bool
	// SignatureScheme is the scheme of this side's CertificateVerify; 0 when it sent none.
	SignatureScheme tls.SignatureScheme
	// PeerSignatureScheme is the scheme of the peer's CertificateVerify; 0 when it sent none.
	PeerSignatureScheme tls.SignatureScheme
	// PeerCertificates is the chain the peer sent, leaf first; empty when it
	// sent none. The service validated it, unless InsecureSkipVerify.
	PeerCertificates []*x509.Certificate
}

// Conn is a TLS 1.3 or TLS 1.2 connection whose handshake runs in the
// handshaker service and whose records are sealed and opened here with the
// keys the service returns. It implements net.Conn; Read and Write may be
// called concurrently.
type Conn struct {
	conn       net.Conn
	config     *Config
	isClient   bool
	serverName string

	handshakeMu          sync.Mutex
	handshakeErr         error
	handshakeDone        atomic.Bool
	state                ConnectionState
	suite                *cipherSuite // TLS 1.3 only
	exporterMasterSecret []byte
	// tls12 is set when TLS 1.2 was negotiated: the exporter's inputs.
	tls12 *tls12Session

	// activeCall's low bit is set once Close has begun; the rest counts Writes
	// in flight, so that Close during a blocked Write closes the socket
	// instead of waiting for the write lock.
	activeCall atomic.Int32
	// peerAlert is the fatal alert the peer sent; nothing is written after it.
	peerAlert atomic.Pointer[AlertError]
	// keyUpdateOwed is set by Read when the peer sent KeyUpdate(update_requested)
	// after our last KeyUpdate; the writer sends ours before its next record.
	keyUpdateOwed atomic.Bool
	// renegotiationsOwed counts TLS 1.2 renegotiation requests Read has not
	// answered with no_renegotiation yet (conn12.go).
	renegotiationsOwed atomic.Int32

	in struct {
		sync.Mutex
		hc        recordProtection
		raw       []byte // wire bytes not yet processed, from rawOff
		rawOff    int
		plain     []byte // application data not yet returned by Read
		handshake []byte // a post-handshake message still arriving
		err       error
		// warningAlerts counts TLS 1.2 warning alerts since the last application data.
		warningAlerts int
	}
	out struct {
		sync.Mutex
		hc              recordProtection
		maxFragment     int
		buf             []byte
		err             error
		closeNotifySent bool
	}
}

// Client returns a client-role Conn over conn. The handshake runs on the
// first Read, Write or Handshake call.
func Client(conn net.Conn, config *Config) *Conn {
	config = config.orDefault()
	return &Conn{conn: conn, config: config, isClient: true, serverName: config.ServerName}
}

// Server returns a server-role Conn over conn, serving config.Credential. The
// handshake runs on the first Read, Write or Handshake call.
func Server(conn net.Conn, config *Config) *Conn {
	return &Conn{conn: conn, config: config.orDefault()}
}

// Handshake runs the handshake if it has not run yet. Read and Write call it.
func (c *Conn) Handshake() error {
	return c.HandshakeContext(context.Background())
}

// HandshakeContext runs the handshake if it has not run yet; ctx bounds the
// handshake (socket and service calls) but not the connection after it. A
// handshake that failed returns its error again.
func (c *Conn) HandshakeContext(ctx context.Context) error {
	if c.handshakeDone.Load() {
		return nil
	}
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	if c.handshakeErr != nil || c.handshakeDone.Load() {
		return c.handshakeErr
	}
	c.handshakeErr = c.runHandshake(ctx)
	if c.handshakeErr == nil {
		c.handshakeDone.Store(true)
	}
	return c.handshakeErr
}

// ConnectionState returns what the handshake negotiated; before the
// handshake completes, HandshakeComplete is false and the rest is zero. It
// waits for a handshake in progress.
func (c *Conn) ConnectionState() ConnectionState {
	c.handshakeMu.Lock()
	defer c.handshakeMu.Unlock()
	return c.state
}

// ExportKeyingMaterial derives keying material with the RFC 8446 section 7.5
// exporter (TLS 1.3), where a nil context and an empty one give the same
// result, or the RFC 5705 exporter (TLS 1.2), where a nil context is "no
// context" and differs from an empty one, as in crypto/tls. TLS 1.2 refuses
// the labels RFC 5705 reserves and sessions without the RFC 7627 extended
// master secret (crypto/tls does too).
func (c *Conn) ExportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if !c.handshakeDone.Load() {
		return nil, errors.New("handshaker: ExportKeyingMaterial before the handshake completed")
	}
	if c.tls12 != nil {
		if length < 0 {
			return nil, errors.New("handshaker: ExportKeyingMaterial: length out of range")
		}
		return c.tls12.exportKeyingMaterial(label, context, length)
	}
	if length < 0 || length > 255*c.suite.hash().Size() {
		return nil, errors.New("handshaker: ExportKeyingMaterial: length out of range")
	}
	if len(label) > 255-len("tls13 ") {
		return nil, errors.New("handshaker: ExportKeyingMaterial: label too long")
	}
	return exportKeyingMaterial(c.suite, c.exporterMasterSecret, label, context, length), nil
}

// Read reads application data, running the handshake first if needed. It
// returns io.EOF once the peer has sent close_notify.
func (c *Conn) Read(b []byte) (int, error) {
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	if len(b) == 0 {
		return 0, nil
	}
	c.in.Lock()
	defer c.in.Unlock()
	for len(c.in.plain) == 0 {
		if c.in.err != nil {
			return 0, c.in.err
		}
		if err := c.readRecord(); err != nil {
			var netErr net.Error
			if errors.As(err, &netErr) && netErr.Timeout() {
				// A deadline leaves the stream intact: a partial record stays buffered.
				return 0, err
			}
			c.in.err = err
		}
	}
	n := copy(b, c.in.plain)
	c.in.plain = c.in.plain[n:]
	return n, nil
}

// fill reads until at least n unprocessed bytes are buffered.
func (c *Conn) fill(n int) error {
	for len(c.in.raw)-c.in.rawOff < n {
		if c.in.rawOff > 0 {
			c.in.raw = c.in.raw[:copy(c.in.raw, c.in.raw[c.in.rawOff:])]
			c.in.rawOff = 0
		}
		if cap(c.in.raw)-len(c.in.raw) < handshakeReadSize/2 {
			grown := make([]byte, len(c.in.raw), len(c.in.raw)+2*(recordHeaderLen+maxCiphertext))
			copy(grown, c.in.raw)
			c.in.raw = grown
		}
		m, err := c.conn.Read(c.in.raw[len(c.in.raw):cap(c.in.raw)])
		c.in.raw = c.in.raw[:len(c.in.raw)+m]
		if m > 0 {
			continue
		}
		if err == io.EOF {
			if len(c.in.raw)-c.in.rawOff == 0 {
				// The peer closed the transport without close_notify: a
				// possible truncation, which is not a clean end of stream.
				return fmt.Errorf("handshaker: the peer closed the connection without close_notify: %w", io.ErrUnexpectedEOF)
			}
			return fmt.Errorf("handshaker: the connection ended inside a record: %w", io.ErrUnexpectedEOF)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// readRecord reads and processes one record. Only application data goes to
// c.in.plain; alerts and post-handshake messages are handled here.
func (c *Conn) readRecord() error {
	if c.tls12 != nil {
		return c.readRecord12()
	}
	if err := c.fill(recordHeaderLen); err != nil {
		return err
	}
	header := c.in.raw[c.in.rawOff : c.in.rawOff+recordHeaderLen]
	length := int(header[3])<<8 | int(header[4])
	// After the handshake every record is protected, so its opaque_type is
	// application_data; a change_cipher_spec is only allowed "before the peer's
	// Finished message has been received".
	if header[0] != recordTypeApplicationData {
		return c.fail(&recordError{AlertUnexpectedMessage, fmt.Sprintf("unprotected record of type %d after the handshake", header[0])})
	}
	if length > maxCiphertext {
		return c.fail(&recordError{AlertRecordOverflow, "record longer than 2^14+256"})
	}
	if err := c.fill(recordHeaderLen + length); err != nil {
		return err
	}
	record := c.in.raw[c.in.rawOff : c.in.rawOff+recordHeaderLen+length]
	c.in.rawOff += len(record)
	contentType, content, err := c.in.hc.open(record)
	if err != nil {
		return c.fail(err)
	}
	// "Handshake messages MUST NOT be interleaved with other record types."
	if contentType != recordTypeHandshake && len(c.in.handshake) > 0 {
		return c.fail(&recordError{AlertUnexpectedMessage, "a record interrupted a handshake message"})
	}
	switch contentType {
	case recordTypeApplicationData:
		c.in.plain = content
		return nil
	case recordTypeAlert:
		return c.handleAlert(content)
	case recordTypeHandshake:
		return c.handlePostHandshake(content)
	default:
		return c.fail(&recordError{AlertUnexpectedMessage, fmt.Sprintf("record of content type %d", contentType)})
	}
}

func (c *Conn) handleAlert(content []byte) error {
	if len(content) != 2 {
		return c.fail(&recordError{AlertDecodeError, "alert record is not two bytes"})
	}
	switch description := content[1]; description {
	case AlertCloseNotify:
		return io.EOF
	case AlertUserCanceled:
		// A closure alert, not an error: "This alert should be followed by a close_notify."
		return nil
	default:
		// "All alerts listed in Section 6.2 MUST be ... treated as error
		// alerts when received regardless of the AlertLevel."
		alert := &AlertError{Alert: description, Reason: "received from the peer", SentByPeer: true}
		c.peerAlert.Store(alert)
		return alert
	}
}

func (c *Conn) handlePostHandshake(content []byte) error {
	// "Zero-length fragments of Handshake types ... MUST NOT be sent."
	if len(content) == 0 {
		return c.fail(&recordError{AlertUnexpectedMessage, "empty handshake record"})
	}
	c.in.handshake = append(c.in.handshake, content...)
	for len(c.in.handshake) >= 4 {
		buffered := c.in.handshake
		length := int(buffered[1])<<16 | int(buffered[2])<<8 | int(buffered[3])
		if length > maxPostHandshakeMessage {
			return c.fail(&recordError{AlertUnexpectedMessage, "post-handshake message too long"})
		}
		if len(buffered) < 4+length {
			break
		}
		messageType, body := buffered[0], buffered[4:4+length]
		c.in.handshake = buffered[4+length:]
		switch messageType {
		case typeNewSessionTicket:
			// The stream API takes no PSK to resume with, so tickets are unused.
		case typeKeyUpdate:
			if err := c.handleKeyUpdate(body); err != nil {
				return err
			}
		case typeCertificateRequest:
			return c.fail(&recordError{AlertUnexpectedMessage, "post-handshake CertificateRequest, but post_handshake_auth was not offered"})
		default:
			return c.fail(&recordError{AlertUnexpectedMessage, fmt.Sprintf("post-handshake message of type %d", messageType)})
		}
	}
	if len(c.in.handshake) == 0 {
		c.in.handshake = nil
	}
	return nil
}

// handleKeyUpdate is RFC 8446 section 4.6.3:
//
//	enum { update_not_requested(0), update_requested(1), (255) } KeyUpdateRequest;
//	struct { KeyUpdateRequest request_update; } KeyUpdate;
func (c *Conn) handleKeyUpdate(body []byte) error {
	if len(body) != 1 {
		return c.fail(&recordError{AlertDecodeError, "KeyUpdate is not one byte"})
	}
	// "If an implementation receives a KeyUpdate ... not at a record boundary
	// ... it MUST terminate the connection with an "unexpected_message" alert."
	if len(c.in.handshake) > 0 {
		return c.fail(&recordError{AlertUnexpectedMessage, "KeyUpdate not at the end of its record"})
	}
	request := body[0]
	if request > 1 {
		return c.fail(&recordError{AlertIllegalParameter, "KeyUpdate request_update is neither 0 nor 1"})
	}
	if err := c.in.hc.update(); err != nil {
		return c.fail(&recordError{AlertInternalError, "cannot derive the next read keys"})
	}
	if request == 1 {
		// "the receiver MUST send a KeyUpdate of its own with request_update
		// set to "update_not_requested" prior to sending its next Application
		// Data record." It is owed, not sent here: the next record we write
		// carries it first, so requests that arrive meanwhile share one answer
		// ("an implementation which receives multiple KeyUpdates while it is
		// silent [responds] with a single update"), and Read never waits for
		// a blocked Write.
		c.keyUpdateOwed.Store(true)
	}
	return nil
}

// appendOwedLocked appends what the peer is owed before our next record: TLS
// 1.2 no_renegotiation alerts, and our KeyUpdate(update_not_requested) when
// the peer's update_requested is still unanswered, which moves the write keys on.
func (c *Conn) appendOwedLocked(dst []byte) ([]byte, error) {
	dst, err := c.appendOwedRefusalsLocked(dst)
	if err != nil || !c.keyUpdateOwed.Swap(false) {
		return dst, err
	}
	return c.appendKeyUpdateLocked(dst, false)
}

func (c *Conn) appendKeyUpdateLocked(dst []byte, requestPeer bool) ([]byte, error) {
	request := byte(0)
	if requestPeer {
		request = 1
	}
	dst, err := c.out.hc.seal(dst, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, request})
	if err != nil {
		return dst, err
	}
	// "after sending a KeyUpdate message, the sender SHALL send all its
	// traffic using the next generation of keys"
	return dst, c.out.hc.update()
}

// fail sends the alert for a record-layer error and returns the error the
// connection reports from now on.
func (c *Conn) fail(err error) error {
	var re *recordError
	if !errors.As(err, &re) {
		return err
	}
	c.sendAlert(re.alert, re.reason)
	return &AlertError{Alert: re.alert, Reason: re.reason}
}

// sendAlert writes a fatal alert; the connection sends nothing after it.
func (c *Conn) sendAlert(description uint8, reason string) {
	c.out.Lock()
	defer c.unlockOut()
	if c.out.err != nil || c.out.closeNotifySent || c.out.hc == nil {
		return
	}
	record, err := c.appendOwedLocked(c.out.buf[:0])
	if err == nil {
		record, err = c.out.hc.seal(record, recordTypeAlert, []byte{2, description})
	}
	if err == nil {
		_, _ = c.conn.Write(record)
	}
	c.out.err = &AlertError{Alert: description, Reason: reason}
}

// UpdateKeys sends a KeyUpdate and moves this side's writes to the next
// traffic keys. With requestPeer the peer is asked to update its keys too
// (update_requested), which it does before its next application data.
// TLS 1.2 has no KeyUpdate: UpdateKeys returns an error, sends nothing, and
// the connection goes on.
func (c *Conn) UpdateKeys(requestPeer bool) error {
	if err := c.Handshake(); err != nil {
		return err
	}
	if c.tls12 != nil {
		return errNoKeyUpdate12
	}
	c.out.Lock()
	defer c.unlockOut()
	if err := c.writeErrorLocked(); err != nil {
		return err
	}
	if err := c.sendKeyUpdateLocked(requestPeer); err != nil {
		c.out.err = err
		return err
	}
	return nil
}

// sendKeyUpdateLocked writes a KeyUpdate, after the one we owe the peer if any.
func (c *Conn) sendKeyUpdateLocked(requestPeer bool) error {
	record, err := c.appendOwedLocked(c.out.buf[:0])
	if err == nil {
		record, err = c.appendKeyUpdateLocked(record, requestPeer)
	}
	if err != nil {
		return err
	}
	c.out.buf = record[:0]
	_, err = c.conn.Write(record)
	return err
}

var errWriteAfterCloseWrite = errors.New("handshaker: write after CloseWrite")

func (c *Conn) writeErrorLocked() error {
	if c.out.err != nil {
		return c.out.err
	}
	if alert := c.peerAlert.Load(); alert != nil {
		return alert
	}
	if c.out.closeNotifySent {
		return errWriteAfterCloseWrite
	}
	return nil
}

// Write seals b into records of at most min(2^14, the peer's
// record_size_limit) bytes and writes them, running the handshake first if
// needed.
func (c *Conn) Write(b []byte) (int, error) {
	for {
		x := c.activeCall.Load()
		if x&1 != 0 {
			return 0, net.ErrClosed
		}
		if c.activeCall.CompareAndSwap(x, x+2) {
			break
		}
	}
	defer c.activeCall.Add(-2)
	if err := c.Handshake(); err != nil {
		return 0, err
	}
	c.out.Lock()
	defer c.unlockOut()
	if err := c.writeErrorLocked(); err != nil {
		return 0, err
	}
	written := 0
	for len(b) > 0 {
		batch := c.out.buf[:0]
		taken := 0
		for len(b) > taken && len(batch) < writeBatch {
			// A KeyUpdate goes before the record when one is due: the answer
			// the peer is owed (it may have arrived while this batch was being
			// sealed), else ours ahead of the sequence-number limit.
			var err error
			batch, err = c.appendOwedLocked(batch)
			if err == nil && c.tls12 == nil && c.out.hc.sequence() >= rekeyAfterRecords {
				batch, err = c.appendKeyUpdateLocked(batch, false)
			}
			fragment := min(len(b)-taken, c.out.maxFragment)
			if err == nil {
				batch, err = c.out.hc.seal(batch, recordTypeApplicationData, b[taken:taken+fragment])
			}
			if err != nil {
				c.out.err = err
				return written, err
			}
			taken += fragment
		}
		c.out.buf = batch[:0]
		if _, err := c.conn.Write(batch); err != nil {
			// Part of a record may be on the wire: the stream cannot go on.
			c.out.err = err
			return written, err
		}
		written += taken
		b = b[taken:]
	}
	return written, nil
}

// closeNotify sends close_notify once; "Either party MAY initiate a close of
// its write side of the connection by sending a "close_notify" alert."
func (c *Conn) closeNotify() error {
	c.out.Lock()
	defer c.unlockOut()
	// After a fatal alert or a failed write there is nothing to close cleanly.
	if c.out.closeNotifySent || c.out.err != nil || c.peerAlert.Load() != nil {
		return nil
	}
	c.out.closeNotifySent = true
	_ = c.conn.SetWriteDeadline(time.Now().Add(closeNotifyTimeout))
	defer c.conn.SetWriteDeadline(time.Time{})
	record, err := c.appendOwedLocked(c.out.buf[:0])
	if err == nil {
		record, err = c.out.hc.seal(record, recordTypeAlert, []byte{1, AlertCloseNotify})
	}
	if err != nil {
		return err
	}
	_, err = c.conn.Write(record)
	return err
}

// CloseWrite sends close_notify and shuts down the write side of the
// transport when it can; the peer reads io.EOF and may keep sending.
func (c *Conn) CloseWrite() error {
	if !c.handshakeDone.Load() {
		return errors.New("handshaker: CloseWrite before the handshake completed")
	}
	if err := c.closeNotify(); err != nil {
		return err
	}
	if cw, ok := c.conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// Close sends close_notify (when the handshake completed and no Write is
// blocked) and closes the transport.
func (c *Conn) Close() error {
	var x int32
	for {
		x = c.activeCall.Load()
		if x&1 != 0 {
			return net.ErrClosed
		}
		if c.activeCall.CompareAndSwap(x, x|1) {
			break
		}
	}
	if x != 0 {
		// A Write is in flight: Close is being used to break it, and waiting
		// for the write lock to send close_notify could block.
		return c.conn.Close()
	}
	var alertErr error
	if c.handshakeDone.Load() {
		if err := c.closeNotify(); err != nil {
			alertErr = fmt.Errorf("handshaker: sending close_notify: %w", err)
		}
	}
	if err := c.conn.Close(); err != nil {
		return err
	}
	return alertErr
}

// NetConn returns the transport Conn wraps. Writing to it or reading from
// it directly corrupts the TLS stream.
func (c *Conn) NetConn() net.Conn { return c.conn }

func (c *Conn) LocalAddr() net.Addr                { return c.conn.LocalAddr() }
func (c *Conn) RemoteAddr() net.Addr               { return c.conn.RemoteAddr() }
func (c *Conn) SetDeadline(t time.Time) error      { return c.conn.SetDeadline(t) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.conn.SetReadDeadline(t) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.conn.SetWriteDeadline(t) }
