package handshaker

// The TLS 1.3 record protection (RFC 8446 section 5.2) and the traffic-key
// arithmetic this side needs after the handshake: KeyUpdate (section 7.2) and
// the exporter (section 7.5). The handshake's own secrets never reach here.

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// TLS record content types (RFC 8446 section 5.1).
const (
	recordTypeChangeCipherSpec uint8 = 20
	recordTypeAlert            uint8 = 21
	recordTypeHandshake        uint8 = 22
	recordTypeApplicationData  uint8 = 23
)

// Post-handshake handshake message types (RFC 8446 section 4).
const (
	typeNewSessionTicket   uint8 = 4
	typeCertificateRequest uint8 = 13
	typeKeyUpdate          uint8 = 24
)

const (
	recordHeaderLen = 5
	// "The length MUST NOT exceed 2^14 bytes" for TLSPlaintext.fragment.
	maxPlaintext = 1 << 14
	// "The length [of TLSCiphertext] MUST NOT exceed 2^14 + 256 bytes."
	maxCiphertext = maxPlaintext + 256
	nonceLen      = 12
)

// cipherSuite is what the record layer needs of a TLS 1.3 cipher suite.
type cipherSuite struct {
	id     uint16
	keyLen int
	hash   func() hash.Hash
	aead   func(key []byte) (cipher.AEAD, error)
}

func aesGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

var cipherSuites = []*cipherSuite{
	{tls.TLS_AES_128_GCM_SHA256, 16, sha256.New, aesGCM},
	{tls.TLS_AES_256_GCM_SHA384, 32, sha512.New384, aesGCM},
	{tls.TLS_CHACHA20_POLY1305_SHA256, chacha20poly1305.KeySize, sha256.New, chacha20poly1305.New},
}

func cipherSuiteByID(id uint16) *cipherSuite {
	for _, s := range cipherSuites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// hkdfExpandLabel is RFC 8446 section 7.1:
//
//	HKDF-Expand-Label(Secret, Label, Context, Length) =
//	     HKDF-Expand(Secret, HkdfLabel, Length)
//	struct {
//	    uint16 length = Length;
//	    opaque label<7..255> = "tls13 " + Label;
//	    opaque context<0..255> = Context;
//	} HkdfLabel;
func hkdfExpandLabel(h func() hash.Hash, secret []byte, label string, context []byte, length int) []byte {
	info := make([]byte, 0, 2+1+6+len(label)+1+len(context))
	info = binary.BigEndian.AppendUint16(info, uint16(length))
	info = append(info, byte(6+len(label)))
	info = append(info, "tls13 "...)
	info = append(info, label...)
	info = append(info, byte(len(context)))
	info = append(info, context...)
	out, err := hkdf.Expand(h, secret, string(info), length)
	if err != nil {
		// Only a length above 255*Hash.length fails, and no caller asks for one.
		panic("handshaker: HKDF-Expand-Label: " + err.Error())
	}
	return out
}

// recordProtection seals and opens the records of one direction: halfConn
// for TLS 1.3, halfConn12 for TLS 1.2.
type recordProtection interface {
	// seal appends one record carrying payload as contentType.
	seal(dst []byte, contentType uint8, payload []byte) ([]byte, error)
	// open decrypts one whole record in place: its content type and content.
	open(record []byte) (uint8, []byte, error)
	// update moves to the next traffic keys (TLS 1.3 KeyUpdate only).
	update() error
	// sequence is the sequence number of the next record.
	sequence() uint64
}

// halfConn protects the TLS 1.3 records of one direction.
type halfConn struct {
	suite  *cipherSuite
	aead   cipher.AEAD
	iv     [nonceLen]byte
	secret []byte
	seq    uint64
}

func newHalfConn(suite *cipherSuite, keys *pb.TrafficKeys) (*halfConn, error) {
	if keys == nil {
		return nil, errors.New("no traffic keys")
	}
	if len(keys.GetKey()) != suite.keyLen || len(keys.GetIv()) != nonceLen {
		return nil, fmt.Errorf("traffic key or IV has the wrong length for cipher suite %#04x", suite.id)
	}
	if len(keys.GetSecret()) != suite.hash().Size() {
		return nil, fmt.Errorf("traffic secret has the wrong length for cipher suite %#04x", suite.id)
	}
	aead, err := suite.aead(keys.GetKey())
	if err != nil {
		return nil, err
	}
	hc := &halfConn{suite: suite, aead: aead, secret: append([]byte(nil), keys.GetSecret()...), seq: keys.GetSequenceNumber()}
	copy(hc.iv[:], keys.GetIv())
	return hc, nil
}

func (hc *halfConn) sequence() uint64 { return hc.seq }

// update moves to the next generation of traffic keys (RFC 8446 section 7.2):
//
//	application_traffic_secret_N+1 =
//	    HKDF-Expand-Label(application_traffic_secret_N,
//	                      "traffic upd", "", Hash.length)
func (hc *halfConn) update() error {
	h := hc.suite.hash
	next := hkdfExpandLabel(h, hc.secret, "traffic upd", nil, h().Size())
	aead, err := hc.suite.aead(hkdfExpandLabel(h, next, "key", nil, hc.suite.keyLen))
	if err != nil {
		return err
	}
	clear(hc.secret)
	hc.secret = next
	hc.aead = aead
	copy(hc.iv[:], hkdfExpandLabel(h, next, "iv", nil, nonceLen))
	hc.seq = 0
	return nil
}

// nonce is RFC 8446 section 5.3: the 64-bit sequence number, left-padded to
// iv_length, XORed with the static IV.
func (hc *halfConn) nonce() [nonceLen]byte {
	n := hc.iv
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], hc.seq)
	for i := range seq {
		n[nonceLen-8+i] ^= seq[i]
	}
	return n
}

var errSequenceExhausted = errors.New("record sequence number exhausted; the keys must be updated")

// seal appends one TLSCiphertext record carrying payload as contentType.
//
//	struct {
//	    opaque content[TLSPlaintext.length];
//	    ContentType type;
//	    uint8 zeros[length_of_padding];
//	} TLSInnerPlaintext;
//
//	struct {
//	    ContentType opaque_type = application_data; /* 23 */
//	    ProtocolVersion legacy_record_version = 0x0303; /* TLS v1.2 */
//	    uint16 length;
//	    opaque encrypted_record[TLSCiphertext.length];
//	} TLSCiphertext;
func (hc *halfConn) seal(dst []byte, contentType uint8, payload []byte) ([]byte, error) {
	if hc.seq == ^uint64(0) {
		return dst, errSequenceExhausted
	}
	length := len(payload) + 1 + hc.aead.Overhead()
	start := len(dst)
	// Room for the whole record, so that Seal encrypts in place.
	dst = slices.Grow(dst, recordHeaderLen+length)
	dst = append(dst, recordTypeApplicationData, 3, 3, byte(length>>8), byte(length))
	dst = append(dst, payload...)
	dst = append(dst, contentType)
	nonce := hc.nonce()
	inner := dst[start+recordHeaderLen:]
	hc.aead.Seal(inner[:0], nonce[:], inner, dst[start:start+recordHeaderLen])
	hc.seq++
	return dst[:start+recordHeaderLen+length], nil
}

// recordError is a record that breaks RFC 8446; the alert goes to the peer.
type recordError struct {
	alert  uint8
	reason string
}

func (e *recordError) Error() string { return e.reason }

// open decrypts one whole record (header included) in place and returns its
// inner content type and content.
func (hc *halfConn) open(record []byte) (uint8, []byte, error) {
	if hc.seq == ^uint64(0) {
		return 0, nil, &recordError{AlertInternalError, errSequenceExhausted.Error()}
	}
	nonce := hc.nonce()
	ciphertext := record[recordHeaderLen:]
	if len(ciphertext) < hc.aead.Overhead()+1 {
		return 0, nil, &recordError{AlertBadRecordMAC, "record too short to decrypt"}
	}
	plaintext, err := hc.aead.Open(ciphertext[:0], nonce[:], ciphertext, record[:recordHeaderLen])
	if err != nil {
		return 0, nil, &recordError{AlertBadRecordMAC, "record failed to decrypt"}
	}
	hc.seq++
	// "The length MUST NOT exceed 2^14 + 1 octets" for TLSInnerPlaintext.
	if len(plaintext) > maxPlaintext+1 {
		return 0, nil, &recordError{AlertRecordOverflow, "record plaintext longer than 2^14+1"}
	}
	i := len(plaintext) - 1
	for i >= 0 && plaintext[i] == 0 {
		i--
	}
	// "If a receiving implementation does not find a non-zero octet in the
	// cleartext, it MUST terminate the connection with an "unexpected_message" alert."
	if i < 0 {
		return 0, nil, &recordError{AlertUnexpectedMessage, "record has no content type"}
	}
	return plaintext[i], plaintext[:i], nil
}

// exportKeyingMaterial is RFC 8446 section 7.5:
//
//	TLS-Exporter(label, context_value, key_length) =
//	    HKDF-Expand-Label(Derive-Secret(Secret, label, ""),
//	                      "exporter", Hash(context_value), key_length)
func exportKeyingMaterial(suite *cipherSuite, exporterMasterSecret []byte, label string, context []byte, length int) []byte {
	h := suite.hash
	empty := h()
	secret := hkdfExpandLabel(h, exporterMasterSecret, label, empty.Sum(nil), h().Size())
	contextHash := h()
	contextHash.Write(context)
	return hkdfExpandLabel(h, secret, "exporter", contextHash.Sum(nil), length)
}
