package handshaker

// The TLS 1.2 side of Conn after the handshake (RFC 5246 sections 6.2 and
// 7.2): the content type travels in the record header, warning alerts are
// ignored (a bounded number in a row), and renegotiation is refused with a
// warning no_renegotiation alert (RFC 5746 section 4). There is no KeyUpdate.

import (
	"encoding/binary"
	"fmt"
	"io"
)

const (
	// Warning alerts in a row before the peer is cut off (BoringSSL's
	// kMaxWarningAlerts); application data resets the count.
	maxWarningAlerts = 4
	// A renegotiation ClientHello is buffered whole before it is refused.
	maxPostHandshakeMessage12 = 1 << 17
	// TLS 1.2 handshake message types that ask for a renegotiation.
	typeHelloRequest  uint8 = 0
	typeClientHello   uint8 = 1
	alertLevelWarning uint8 = 1
	// AlertNoRenegotiation is RFC 5246 section 7.2.2's no_renegotiation.
	alertNoRenegotiation uint8 = 100
)

// readRecord12 reads and processes one TLS 1.2 record.
func (c *Conn) readRecord12() error {
	if err := c.fill(recordHeaderLen); err != nil {
		return err
	}
	header := c.in.raw[c.in.rawOff : c.in.rawOff+recordHeaderLen]
	length := int(binary.BigEndian.Uint16(header[3:]))
	if binary.BigEndian.Uint16(header[1:3]) != version12 {
		return c.fail(&recordError{AlertProtocolVersion, "a record that is not TLS 1.2"})
	}
	if length > maxCiphertext12 {
		return c.fail(&recordError{AlertRecordOverflow, "record longer than 2^14+2048"})
	}
	if err := c.fill(recordHeaderLen + length); err != nil {
		return err
	}
	record := c.in.raw[c.in.rawOff : c.in.rawOff+recordHeaderLen+length]
	c.in.rawOff += len(record)
	switch record[0] {
	case recordTypeApplicationData, recordTypeAlert, recordTypeHandshake:
	default:
		// change_cipher_spec belongs to the handshake; nothing else is negotiated.
		return c.fail(&recordError{AlertUnexpectedMessage, fmt.Sprintf("a record of type %d after the handshake", record[0])})
	}
	contentType, content, err := c.in.hc.open(record)
	if err != nil {
		return c.fail(err)
	}
	if contentType != recordTypeHandshake && len(c.in.handshake) > 0 {
		return c.fail(&recordError{AlertUnexpectedMessage, "a record interrupted a handshake message"})
	}
	switch {
	case contentType == recordTypeApplicationData:
		c.in.warningAlerts = 0
		c.in.plain = content
		return nil
	case len(content) == 0:
		// "Implementations MUST NOT send zero-length fragments of Handshake,
		// Alert, or ChangeCipherSpec content types." (section 6.2.1)
		return c.fail(&recordError{AlertUnexpectedMessage, "a zero-length handshake or alert record"})
	case contentType == recordTypeAlert:
		return c.handleAlert12(content)
	default:
		return c.handleHandshake12(content)
	}
}

// handleAlert12 is RFC 5246 section 7.2: close_notify ends the peer's
// stream, a warning lets "the connection ... continue normally", a fatal
// alert ends the connection.
func (c *Conn) handleAlert12(content []byte) error {
	if len(content) != 2 {
		return c.fail(&recordError{AlertDecodeError, "alert record is not two bytes"})
	}
	level, description := content[0], content[1]
	switch {
	case description == AlertCloseNotify:
		return io.EOF
	case level == alertLevelWarning:
		// Bounded, so that a peer cannot keep us spinning on warnings.
		c.in.warningAlerts++
		if c.in.warningAlerts > maxWarningAlerts {
			return c.fail(&recordError{AlertUnexpectedMessage, "too many warning alerts in a row"})
		}
		return nil
	default:
		alert := &AlertError{Alert: description, Reason: "received from the peer", SentByPeer: true}
		c.peerAlert.Store(alert)
		return alert
	}
}

// handleHandshake12 reassembles post-handshake messages: a HelloRequest (a
// server's) or a ClientHello (a client's) asks for a renegotiation, which is
// refused (RFC 5746 section 4); any other message is unexpected.
func (c *Conn) handleHandshake12(content []byte) error {
	c.in.handshake = append(c.in.handshake, content...)
	refused := false
	for len(c.in.handshake) >= 4 {
		buffered := c.in.handshake
		messageType := buffered[0]
		length := int(buffered[1])<<16 | int(buffered[2])<<8 | int(buffered[3])
		if messageType != typeHelloRequest && messageType != typeClientHello {
			return c.fail(&recordError{AlertUnexpectedMessage, fmt.Sprintf("handshake message of type %d after the handshake", messageType)})
		}
		// struct { } HelloRequest;
		if messageType == typeHelloRequest && length != 0 {
			return c.fail(&recordError{AlertDecodeError, "a HelloRequest with a body"})
		}
		if length > maxPostHandshakeMessage12 {
			return c.fail(&recordError{AlertUnexpectedMessage, "post-handshake message too long"})
		}
		if len(buffered) < 4+length {
			break
		}
		c.in.handshake = buffered[4+length:]
		c.renegotiationsOwed.Add(1)
		refused = true
	}
	if len(c.in.handshake) == 0 {
		c.in.handshake = nil
	}
	if refused {
		c.flushOwedRecords()
	}
	return nil
}

// appendOwedRefusalsLocked appends a warning no_renegotiation for each
// renegotiation the peer asked for and has not been answered yet: "Sent by
// the client in response to a hello request or by the server in response to
// a client hello after initial handshaking" (RFC 5246 section 7.2.2).
func (c *Conn) appendOwedRefusalsLocked(dst []byte) ([]byte, error) {
	for n := c.renegotiationsOwed.Swap(0); n > 0; n-- {
		var err error
		if dst, err = c.out.hc.seal(dst, recordTypeAlert, []byte{alertLevelWarning, alertNoRenegotiation}); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// flushOwedRecords writes what Read found owed to the peer, unless a writer
// holds the lock: that writer sends it before its next record, or when it
// unlocks (unlockOut). Read never waits for a blocked Write.
func (c *Conn) flushOwedRecords() {
	if c.renegotiationsOwed.Load() == 0 || !c.out.TryLock() {
		return
	}
	defer c.unlockOut()
	if c.writeErrorLocked() != nil {
		// Nothing more goes to the peer (after our close_notify, say).
		c.renegotiationsOwed.Store(0)
		return
	}
	record, err := c.appendOwedRefusalsLocked(c.out.buf[:0])
	if err == nil && len(record) > 0 {
		c.out.buf = record[:0]
		_, err = c.conn.Write(record)
	}
	if err != nil {
		c.out.err = err
	}
}

// unlockOut releases the write lock and then sends what Read left owed
// while it was held.
func (c *Conn) unlockOut() {
	c.out.Unlock()
	c.flushOwedRecords()
}
