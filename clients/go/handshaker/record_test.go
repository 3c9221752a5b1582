package handshaker

// Record protection checked against the RFC 8448 section 3 trace, without
// the service.

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"testing"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 8448 section 3 ("Simple 1-RTT Handshake"), TLS_AES_128_GCM_SHA256.
const (
	rfc8448ServerHandshakeSecret = "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38"
	rfc8448ClientAppSecret       = "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5"
	rfc8448ServerAppSecret       = "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643"
	rfc8448ClientAppKey          = "17422dda596ed5d9acd890e3c63f5051"
	rfc8448ClientAppIV           = "5b78923dee08579033e523d9"
	rfc8448ServerAppKey          = "9f02283b6c9c07efc26bb9f2ac92e356"
	rfc8448ServerAppIV           = "cf782b88dd83549aadf1e984"
	// The close_notify records that end the trace: the client's is its
	// second record (sequence 1), the server's its third (sequence 2).
	rfc8448ClientCloseNotify = "1703030013c9872760655666b74d7ff1153efd6db6d0b0e3"
	rfc8448ServerCloseNotify = "1703030013b58fd67166ebf599d24720cfbe7efa7a8864a9"
)

func rfc8448Keys(t *testing.T, secret, key, iv string, seq uint64) *pb.TrafficKeys {
	return &pb.TrafficKeys{Secret: unhex(t, secret), Key: unhex(t, key), Iv: unhex(t, iv), SequenceNumber: seq}
}

func TestHKDFExpandLabelDerivesRFC8448TrafficKeys(t *testing.T) {
	for _, tc := range []struct{ secret, key, iv string }{
		{rfc8448ServerHandshakeSecret, "3fce516009c21727d0f2e4e86ee403bc", "5d313eb2671276ee13000b30"},
		{rfc8448ClientAppSecret, rfc8448ClientAppKey, rfc8448ClientAppIV},
		{rfc8448ServerAppSecret, rfc8448ServerAppKey, rfc8448ServerAppIV},
	} {
		secret := unhex(t, tc.secret)
		if got := hkdfExpandLabel(sha256.New, secret, "key", nil, 16); hex.EncodeToString(got) != tc.key {
			t.Errorf("key from %.8s...: %x, want %s", tc.secret, got, tc.key)
		}
		if got := hkdfExpandLabel(sha256.New, secret, "iv", nil, 12); hex.EncodeToString(got) != tc.iv {
			t.Errorf("iv from %.8s...: %x, want %s", tc.secret, got, tc.iv)
		}
	}
}

func TestSealProducesRFC8448CloseNotifyRecords(t *testing.T) {
	suite := cipherSuiteByID(tls.TLS_AES_128_GCM_SHA256)
	for _, tc := range []struct {
		name, secret, key, iv string
		seq                   uint64
		record                string
	}{
		{"client", rfc8448ClientAppSecret, rfc8448ClientAppKey, rfc8448ClientAppIV, 1, rfc8448ClientCloseNotify},
		{"server", rfc8448ServerAppSecret, rfc8448ServerAppKey, rfc8448ServerAppIV, 2, rfc8448ServerCloseNotify},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writer, err := newHalfConn(suite, rfc8448Keys(t, tc.secret, tc.key, tc.iv, tc.seq))
			if err != nil {
				t.Fatal(err)
			}
			record, err := writer.seal([]byte("prefix"), recordTypeAlert, []byte{1, AlertCloseNotify})
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(record[len("prefix"):]); got != tc.record || string(record[:6]) != "prefix" {
				t.Fatalf("sealed %s, want prefix + %s", got, tc.record)
			}
			reader, _ := newHalfConn(suite, rfc8448Keys(t, tc.secret, tc.key, tc.iv, tc.seq))
			contentType, content, err := reader.open(unhex(t, tc.record))
			if err != nil || contentType != recordTypeAlert || !bytes.Equal(content, []byte{1, 0}) {
				t.Fatalf("opened type %d %x, %v", contentType, content, err)
			}
		})
	}
}

func TestOpenRejectsTamperedRecordsWithBadRecordMAC(t *testing.T) {
	suite := cipherSuiteByID(tls.TLS_AES_128_GCM_SHA256)
	record := unhex(t, rfc8448ClientCloseNotify)
	record[len(record)-1] ^= 1
	reader, _ := newHalfConn(suite, rfc8448Keys(t, rfc8448ClientAppSecret, rfc8448ClientAppKey, rfc8448ClientAppIV, 1))
	_, _, err := reader.open(record)
	var re *recordError
	if !errors.As(err, &re) || re.alert != AlertBadRecordMAC {
		t.Fatalf("got %v, want bad_record_mac", err)
	}
}

// sealRaw seals an arbitrary TLSInnerPlaintext, padding included.
func sealRaw(hc *halfConn, inner []byte) []byte {
	length := len(inner) + hc.aead.Overhead()
	header := []byte{recordTypeApplicationData, 3, 3, byte(length >> 8), byte(length)}
	nonce := hc.nonce()
	hc.seq++
	return hc.aead.Seal(header, nonce[:], inner, header)
}

func testPair(t *testing.T, id uint16) (*halfConn, *halfConn) {
	t.Helper()
	suite := cipherSuiteByID(id)
	size := suite.hash().Size()
	keys := &pb.TrafficKeys{
		Secret: bytes.Repeat([]byte{7}, size),
		Key:    bytes.Repeat([]byte{8}, suite.keyLen),
		Iv:     bytes.Repeat([]byte{9}, nonceLen),
	}
	writer, err := newHalfConn(suite, keys)
	if err != nil {
		t.Fatal(err)
	}
	reader, err := newHalfConn(suite, keys)
	if err != nil {
		t.Fatal(err)
	}
	return writer, reader
}

func TestOpenStripsPaddingAndRejectsAllZeroPlaintext(t *testing.T) {
	writer, reader := testPair(t, tls.TLS_AES_128_GCM_SHA256)
	contentType, content, err := reader.open(sealRaw(writer, []byte("data\x17\x00\x00\x00")))
	if err != nil || contentType != recordTypeApplicationData || string(content) != "data" {
		t.Fatalf("padded record opened as type %d %q, %v", contentType, content, err)
	}
	_, _, err = reader.open(sealRaw(writer, make([]byte, 5)))
	var re *recordError
	if !errors.As(err, &re) || re.alert != AlertUnexpectedMessage {
		t.Fatalf("all-zero plaintext: %v, want unexpected_message", err)
	}
}

func TestOpenRejectsPlaintextLongerThan2To14Plus1(t *testing.T) {
	writer, reader := testPair(t, tls.TLS_AES_128_GCM_SHA256)
	inner := append(make([]byte, maxPlaintext+1), recordTypeApplicationData)
	_, _, err := reader.open(sealRaw(writer, inner))
	var re *recordError
	if !errors.As(err, &re) || re.alert != AlertRecordOverflow {
		t.Fatalf("got %v, want record_overflow", err)
	}
}

func TestKeyUpdateKeepsBothEndsInStepForEverySuite(t *testing.T) {
	for _, id := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384, tls.TLS_CHACHA20_POLY1305_SHA256} {
		t.Run(tls.CipherSuiteName(id), func(t *testing.T) {
			writer, reader := testPair(t, id)
			oldSecret := append([]byte(nil), writer.secret...)
			if err := writer.update(); err != nil {
				t.Fatal(err)
			}
			record, err := writer.seal(nil, recordTypeApplicationData, []byte("next generation"))
			if err != nil {
				t.Fatal(err)
			}
			stale := append([]byte(nil), record...)
			if _, _, err := reader.open(stale); err == nil {
				t.Fatal("the old keys opened a record sealed under the updated ones")
			}
			if err := reader.update(); err != nil {
				t.Fatal(err)
			}
			contentType, content, err := reader.open(record)
			if err != nil || contentType != recordTypeApplicationData || string(content) != "next generation" {
				t.Fatalf("opened type %d %q, %v", contentType, content, err)
			}
			if bytes.Equal(writer.secret, oldSecret) || !bytes.Equal(writer.secret, reader.secret) {
				t.Error("the secrets did not move to the same next generation")
			}
			if writer.seq != 1 || reader.seq != 1 {
				t.Errorf("sequence numbers %d and %d after one record, want 1", writer.seq, reader.seq)
			}
		})
	}
}

func TestNewHalfConnRejectsKeysOfTheWrongLength(t *testing.T) {
	suite := cipherSuiteByID(tls.TLS_AES_256_GCM_SHA384)
	// TLS_AES_128_GCM_SHA256-sized keys for an AES-256 suite.
	if _, err := newHalfConn(suite, rfc8448Keys(t, rfc8448ClientAppSecret, rfc8448ClientAppKey, rfc8448ClientAppIV, 0)); err == nil {
		t.Fatal("accepted a 16-byte key and 32-byte secret for TLS_AES_256_GCM_SHA384")
	}
}
