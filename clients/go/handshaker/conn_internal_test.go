package handshaker

// The post-handshake record layer of Conn against a scripted peer over
// net.Pipe: the cases the interop peers do not produce on demand.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// scriptedPeer holds the peer's half of an established connection.
type scriptedPeer struct {
	conn   net.Conn
	write  *halfConn // seals what the peer sends (the Conn's read keys)
	read   *halfConn // opens what the Conn sends
	reader []byte
}

func establishedConn(t *testing.T, maxFragment int) (*Conn, *scriptedPeer) {
	t.Helper()
	ours, theirs := net.Pipe()
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	_ = ours.SetDeadline(time.Now().Add(10 * time.Second))
	_ = theirs.SetDeadline(time.Now().Add(10 * time.Second))
	// Two independent directions, each with a pair of identical halfConns.
	inOurs, outTheirs := testPair(t, tls.TLS_CHACHA20_POLY1305_SHA256)
	outOurs, inTheirs := testPair(t, tls.TLS_CHACHA20_POLY1305_SHA256)
	for _, hc := range []*halfConn{outOurs, inTheirs} {
		hc.iv[0] ^= 0xff
	}
	c := &Conn{conn: ours, config: defaultConfig, suite: inOurs.suite}
	c.in.hc, c.out.hc, c.out.maxFragment = inOurs, outOurs, maxFragment
	c.handshakeDone.Store(true)
	return c, &scriptedPeer{conn: theirs, write: outTheirs, read: inTheirs}
}

// send seals and writes one record per payload, in the background (net.Pipe
// writes wait for the reader).
func (p *scriptedPeer) send(t *testing.T, records ...[]byte) {
	t.Helper()
	var wire []byte
	for _, r := range records {
		wire = append(wire, r...)
	}
	go func() { _, _ = p.conn.Write(wire) }()
}

func (p *scriptedPeer) seal(t *testing.T, contentType uint8, payload []byte) []byte {
	t.Helper()
	record, err := p.write.seal(nil, contentType, payload)
	if err != nil {
		t.Fatal(err)
	}
	return record
}

// next reads and opens the next record the Conn sent.
func (p *scriptedPeer) next(t *testing.T) (uint8, []byte) {
	t.Helper()
	for {
		if len(p.reader) >= recordHeaderLen {
			length := int(p.reader[3])<<8 | int(p.reader[4])
			if len(p.reader) >= recordHeaderLen+length {
				record := append([]byte(nil), p.reader[:recordHeaderLen+length]...)
				p.reader = p.reader[recordHeaderLen+length:]
				contentType, content, err := p.read.open(record)
				if err != nil {
					t.Fatalf("the peer cannot open a record: %v", err)
				}
				return contentType, content
			}
		}
		buf := make([]byte, 1<<16)
		n, err := p.conn.Read(buf)
		if err != nil {
			t.Fatalf("the peer's read: %v", err)
		}
		p.reader = append(p.reader, buf[:n]...)
	}
}

// expectAlert reads from c and expects it to fail with alert, which the peer
// must receive (net.Pipe writes wait for the reader, hence the goroutine).
func expectAlert(t *testing.T, c *Conn, peer *scriptedPeer, alert uint8) {
	t.Helper()
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	if contentType, content := peer.next(t); contentType != recordTypeAlert || !bytes.Equal(content, []byte{2, alert}) {
		t.Fatalf("the peer received type %d %x, want a fatal %s alert", contentType, content, AlertName(alert))
	}
	var got *AlertError
	if err := <-readErr; !errors.As(err, &got) || got.Alert != alert || got.SentByPeer {
		t.Fatalf("error %v, want %s raised by this side", err, AlertName(alert))
	}
}

func TestReadDropsNewSessionTicketsSplitAcrossRecords(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	ticket := append([]byte{typeNewSessionTicket, 0, 0, 10}, bytes.Repeat([]byte{0xaa}, 10)...)
	peer.send(t,
		peer.seal(t, recordTypeHandshake, ticket[:6]),
		peer.seal(t, recordTypeHandshake, ticket[6:]),
		peer.seal(t, recordTypeApplicationData, nil), // zero-length application data is allowed
		peer.seal(t, recordTypeApplicationData, []byte("after the ticket")),
	)
	got := make([]byte, len("after the ticket"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "after the ticket" {
		t.Fatalf("read %q, %v", got, err)
	}
}

func TestWriteAnswersKeyUpdateRequestedBeforeItsData(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	request := peer.seal(t, recordTypeHandshake, []byte{typeKeyUpdate, 0, 0, 1, 1})
	if err := peer.write.update(); err != nil {
		t.Fatal(err)
	}
	peer.send(t, request, peer.seal(t, recordTypeApplicationData, []byte("new keys")))
	got := make([]byte, len("new keys"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "new keys" {
		t.Fatalf("read %q, %v", got, err)
	}
	// The answer is owed, not sent by Read: it leads the next record written.
	go func() { _, _ = c.Write([]byte("reply")) }()
	contentType, content := peer.next(t)
	if contentType != recordTypeHandshake || !bytes.Equal(content, []byte{typeKeyUpdate, 0, 0, 1, 0}) {
		t.Fatalf("the answer is type %d %x, want KeyUpdate(update_not_requested)", contentType, content)
	}
	if err := peer.read.update(); err != nil {
		t.Fatal(err)
	}
	if contentType, content := peer.next(t); contentType != recordTypeApplicationData || string(content) != "reply" {
		t.Fatalf("reply: type %d %q", contentType, content)
	}
}

func TestReadRejectsKeyUpdateThatIsNotAtARecordBoundary(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	message := []byte{typeKeyUpdate, 0, 0, 1, 0, typeNewSessionTicket}
	peer.send(t, peer.seal(t, recordTypeHandshake, message))
	expectAlert(t, c, peer, AlertUnexpectedMessage)
}

func TestReadRejectsUnprotectedRecordsAfterTheHandshake(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	peer.send(t, []byte{recordTypeAlert, 3, 3, 0, 2, 2, AlertInternalError})
	expectAlert(t, c, peer, AlertUnexpectedMessage)
	if _, err := c.Write([]byte("x")); err == nil {
		t.Error("Write succeeded after a fatal alert")
	}
}

func TestReadRejectsApplicationDataInsideAHandshakeMessage(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	peer.send(t,
		peer.seal(t, recordTypeHandshake, []byte{typeNewSessionTicket, 0, 0, 10, 1}),
		peer.seal(t, recordTypeApplicationData, []byte("interleaved")),
	)
	expectAlert(t, c, peer, AlertUnexpectedMessage)
}

func TestReadRejectsPostHandshakeCertificateRequest(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	peer.send(t, peer.seal(t, recordTypeHandshake, []byte{typeCertificateRequest, 0, 0, 0}))
	expectAlert(t, c, peer, AlertUnexpectedMessage)
}

func TestReadIgnoresUserCanceledAndEndsOnCloseNotify(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	peer.send(t,
		peer.seal(t, recordTypeApplicationData, []byte("bye")),
		peer.seal(t, recordTypeAlert, []byte{1, AlertUserCanceled}),
		peer.seal(t, recordTypeAlert, []byte{1, AlertCloseNotify}),
	)
	data, err := io.ReadAll(c)
	if err != nil || string(data) != "bye" {
		t.Fatalf("read %q, %v; want the data, then io.EOF", data, err)
	}
}

func TestReadReportsAPeerErrorAlert(t *testing.T) {
	c, peer := establishedConn(t, maxPlaintext)
	peer.send(t, peer.seal(t, recordTypeAlert, []byte{2, AlertDecryptError}))
	_, err := c.Read(make([]byte, 1))
	var alert *AlertError
	if !errors.As(err, &alert) || alert.Alert != AlertDecryptError || !alert.SentByPeer {
		t.Fatalf("error %v, want decrypt_error from the peer", err)
	}
}

func TestWriteFragmentsAtThePeerRecordSizeLimit(t *testing.T) {
	c, peer := establishedConn(t, 100)
	go func() { _, _ = c.Write(bytes.Repeat([]byte{'x'}, 250)) }()
	var sizes []int
	for total := 0; total < 250; {
		contentType, content := peer.next(t)
		if contentType != recordTypeApplicationData {
			t.Fatalf("record of type %d", contentType)
		}
		sizes = append(sizes, len(content))
		total += len(content)
	}
	if len(sizes) != 3 || sizes[0] != 100 || sizes[1] != 100 || sizes[2] != 50 {
		t.Errorf("record sizes %v, want [100 100 50]", sizes)
	}
}
