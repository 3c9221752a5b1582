package handshaker

// The TLS 1.2 record layer's refusal of renegotiation when a writer holds
// the write lock: Read does not wait for it, and the warning goes out when
// the writer unlocks.

import (
	"bytes"
	"errors"
	"net"
	"testing"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

func tls12TestConn(t *testing.T) (*Conn, *scriptedTransport, *pb.TrafficKeys, *pb.TrafficKeys) {
	t.Helper()
	read := &pb.TrafficKeys{Key: bytes.Repeat([]byte{1}, 16), Iv: []byte{1, 2, 3, 4}, SequenceNumber: 1}
	write := &pb.TrafficKeys{Key: bytes.Repeat([]byte{2}, 16), Iv: []byte{5, 6, 7, 8}, SequenceNumber: 1}
	transport := &scriptedTransport{}
	c := &Conn{conn: transport, config: defaultConfig}
	keys := &pb.SessionKeys{Version: 0x0303, CipherSuite: 0xC02B, Read: read, Write: write}
	if err := c.establish(keys, nil, nil); err != nil {
		t.Fatal(err)
	}
	c.handshakeDone.Store(true)
	return c, transport, read, write
}

func sealed12(t *testing.T, keys *pb.TrafficKeys, contentType uint8, payload []byte) []byte {
	t.Helper()
	hc, err := newHalfConn12(tls12SuiteByID(0xC02B), keys)
	if err != nil {
		t.Fatal(err)
	}
	record, err := hc.seal(nil, contentType, payload)
	if err != nil {
		t.Fatal(err)
	}
	return record
}

func TestTLS12RenegotiationRefusalWaitsForABusyWriter(t *testing.T) {
	c, transport, read, write := tls12TestConn(t)
	transport.in.Write(sealed12(t, read, recordTypeHandshake, []byte{typeHelloRequest, 0, 0, 0}))
	c.out.Lock() // a Write in progress
	_, err := c.Read(make([]byte, 10))
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("Read: %v, want the scripted timeout", err)
	}
	if transport.out.Len() != 0 {
		t.Fatal("Read wrote while the writer held the lock")
	}
	c.unlockOut()
	want := sealed12(t, write, recordTypeAlert, []byte{alertLevelWarning, alertNoRenegotiation})
	if got := transport.out.Bytes(); !bytes.Equal(got, want) {
		t.Fatalf("after unlock wrote %x, want the warning no_renegotiation %x", got, want)
	}
}

func TestTLS12ConnectionStateAndExporterWithoutExtendedMasterSecret(t *testing.T) {
	c, _, _, _ := tls12TestConn(t)
	if s := c.ConnectionState(); s.Version != 0x0303 || s.CipherSuite != 0xC02B {
		t.Fatalf("state %#04x %#04x", s.Version, s.CipherSuite)
	}
	// No Tls12Session (and so no extended master secret): the exporter refuses.
	if _, err := c.ExportKeyingMaterial("EXPORTER-x", nil, 16); err == nil {
		t.Fatal("exported without the extended master secret")
	}
}
