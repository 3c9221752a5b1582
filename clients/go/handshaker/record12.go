package handshaker

// The TLS 1.2 AEAD record protection (RFC 5246 section 6.2.3.3, RFC 5288 for
// AES-GCM, RFC 7905 for ChaCha20-Poly1305) and the RFC 5705 exporter on the
// RFC 5246 section 5 PRF. The service returns, per direction, the AEAD key,
// the fixed IV and the next sequence number; TLS 1.2 has no KeyUpdate.

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

const (
	// "The length [of TLSCiphertext] MUST NOT exceed 2^14 + 2048" (RFC 5246
	// section 6.2.3).
	maxCiphertext12 = maxPlaintext + 2048
	// The record_version of every TLS 1.2 record.
	version12 uint16 = 0x0303
	// RFC 5288 section 3: GCMNonce.salt is 4 bytes, nonce_explicit 8.
	gcmSaltLen     = 4
	gcmExplicitLen = 8
	aeadTagLen     = 16
)

// tls12Suite is what the record layer and the exporter need of a TLS 1.2
// AEAD cipher suite.
type tls12Suite struct {
	id     uint16
	keyLen int
	// ivLen is the fixed IV: GCM's 4-byte salt, ChaCha20-Poly1305's 12 bytes.
	ivLen int
	// explicitNonceLen is 8 for GCM (RFC 5288), 0 for ChaCha20 (RFC 7905).
	explicitNonceLen int
	aead             func(key []byte) (cipher.AEAD, error)
	// prfHash is the PRF's hash: SHA-384 for the _SHA384 suites, else SHA-256
	// (RFC 5288 section 3, RFC 5289 section 3.2, RFC 7905 section 2).
	prfHash func() hash.Hash
}

func gcm128(id uint16) *tls12Suite {
	return &tls12Suite{id, 16, gcmSaltLen, gcmExplicitLen, aesGCM, sha256.New}
}

func gcm256(id uint16) *tls12Suite {
	return &tls12Suite{id, 32, gcmSaltLen, gcmExplicitLen, aesGCM, sha512.New384}
}

func chacha12(id uint16) *tls12Suite {
	return &tls12Suite{id, chacha20poly1305.KeySize, nonceLen, 0, chacha20poly1305.New, sha256.New}
}

var tls12Suites = []*tls12Suite{
	gcm128(0xC02B),   // TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	gcm256(0xC02C),   // TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
	chacha12(0xCCA9), // TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
	gcm128(0xC02F),   // TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
	gcm256(0xC030),   // TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
	chacha12(0xCCA8), // TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
	gcm128(0x009C),   // TLS_RSA_WITH_AES_128_GCM_SHA256
	gcm256(0x009D),   // TLS_RSA_WITH_AES_256_GCM_SHA384
	gcm128(0x009E),   // TLS_DHE_RSA_WITH_AES_128_GCM_SHA256
	gcm256(0x009F),   // TLS_DHE_RSA_WITH_AES_256_GCM_SHA384
	chacha12(0xCCAA), // TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256
}

func tls12SuiteByID(id uint16) *tls12Suite {
	for _, s := range tls12Suites {
		if s.id == id {
			return s
		}
	}
	return nil
}

// halfConn12 protects the TLS 1.2 records of one direction.
type halfConn12 struct {
	suite *tls12Suite
	aead  cipher.AEAD
	iv    []byte
	seq   uint64
}

func newHalfConn12(suite *tls12Suite, keys *pb.TrafficKeys) (*halfConn12, error) {
	if keys == nil {
		return nil, errors.New("no traffic keys")
	}
	if len(keys.GetKey()) != suite.keyLen || len(keys.GetIv()) != suite.ivLen {
		return nil, fmt.Errorf("traffic key or IV has the wrong length for cipher suite %#04x", suite.id)
	}
	aead, err := suite.aead(keys.GetKey())
	if err != nil {
		return nil, err
	}
	return &halfConn12{suite: suite, aead: aead, iv: slices.Clone(keys.GetIv()), seq: keys.GetSequenceNumber()}, nil
}

func (hc *halfConn12) sequence() uint64 { return hc.seq }

var errNoKeyUpdate12 = errors.New("handshaker: TLS 1.2 has no KeyUpdate (RFC 8446 only)")

// update is refused: TLS 1.2 cannot change its keys after the handshake.
func (hc *halfConn12) update() error { return errNoKeyUpdate12 }

// nonce is RFC 5288 section 3 for GCM (salt[4] || nonce_explicit[8]) and
// RFC 7905 section 2 for ChaCha20-Poly1305 (the padded sequence number XORed
// with the 12-byte IV).
func (hc *halfConn12) nonce(explicit []byte) [nonceLen]byte {
	var n [nonceLen]byte
	if hc.suite.explicitNonceLen > 0 {
		copy(n[:], hc.iv)
		copy(n[gcmSaltLen:], explicit)
		return n
	}
	copy(n[:], hc.iv)
	var seq [8]byte
	binary.BigEndian.PutUint64(seq[:], hc.seq)
	for i := range seq {
		n[nonceLen-8+i] ^= seq[i]
	}
	return n
}

// additionalData is RFC 5246 section 6.2.3.3:
//
//	additional_data = seq_num + TLSCompressed.type +
//	                  TLSCompressed.version + TLSCompressed.length;
func (hc *halfConn12) additionalData(contentType uint8, length int) [13]byte {
	var ad [13]byte
	binary.BigEndian.PutUint64(ad[:8], hc.seq)
	ad[8] = contentType
	binary.BigEndian.PutUint16(ad[9:11], version12)
	binary.BigEndian.PutUint16(ad[11:], uint16(length))
	return ad
}

// seal appends one TLSCiphertext record; a GCM record's nonce_explicit is
// the sequence number (RFC 5288 section 3 allows it, and it never repeats).
//
//	struct {
//	    ContentType type;
//	    ProtocolVersion version;
//	    uint16 length;
//	    GenericAEADCipher fragment;  /* nonce_explicit || aead-ciphered */
//	} TLSCiphertext;
func (hc *halfConn12) seal(dst []byte, contentType uint8, payload []byte) ([]byte, error) {
	if hc.seq == ^uint64(0) {
		return dst, errSequenceExhausted
	}
	explicitLen := hc.suite.explicitNonceLen
	length := explicitLen + len(payload) + hc.aead.Overhead()
	start := len(dst)
	dst = slices.Grow(dst, recordHeaderLen+length)
	dst = append(dst, contentType, 3, 3, byte(length>>8), byte(length))
	explicit := dst[len(dst):len(dst)]
	if explicitLen > 0 {
		dst = binary.BigEndian.AppendUint64(dst, hc.seq)
		explicit = dst[len(dst)-explicitLen:]
	}
	nonce := hc.nonce(explicit)
	ad := hc.additionalData(contentType, len(payload))
	dst = hc.aead.Seal(dst, nonce[:], payload, ad[:])
	hc.seq++
	return dst[:start+recordHeaderLen+length], nil
}

// open decrypts one whole record (header included) in place and returns its
// content type, from the header, and its content.
func (hc *halfConn12) open(record []byte) (uint8, []byte, error) {
	contentType := record[0]
	fragment := record[recordHeaderLen:]
	explicitLen := hc.suite.explicitNonceLen
	length := len(fragment) - explicitLen - aeadTagLen
	if length < 0 {
		return 0, nil, &recordError{AlertBadRecordMAC, "a record too short for its nonce and tag"}
	}
	if hc.seq == ^uint64(0) {
		return 0, nil, &recordError{AlertInternalError, errSequenceExhausted.Error()}
	}
	// The peer chooses its GCM nonce_explicit: use the one it sent.
	nonce := hc.nonce(fragment[:explicitLen])
	ad := hc.additionalData(contentType, length)
	ciphertext := fragment[explicitLen:]
	plaintext, err := hc.aead.Open(ciphertext[:0], nonce[:], ciphertext, ad[:])
	if err != nil {
		return 0, nil, &recordError{AlertBadRecordMAC, "record failed to decrypt"}
	}
	hc.seq++
	// "The length MUST NOT exceed 2^14" for TLSCompressed.fragment.
	if len(plaintext) > maxPlaintext {
		return 0, nil, &recordError{AlertRecordOverflow, "record plaintext longer than 2^14"}
	}
	return contentType, plaintext, nil
}

// pHash is RFC 5246 section 5:
//
//	P_hash(secret, seed) = HMAC_hash(secret, A(1) + seed) +
//	                       HMAC_hash(secret, A(2) + seed) + ...
//	A(0) = seed
//	A(i) = HMAC_hash(secret, A(i-1))
func pHash(h func() hash.Hash, secret, seed []byte, length int) []byte {
	out := make([]byte, 0, length+h().Size())
	mac := hmac.New(h, secret)
	mac.Write(seed)
	a := mac.Sum(nil)
	for len(out) < length {
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		out = mac.Sum(out)
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(a[:0])
	}
	return out[:length]
}

// prf12 is RFC 5246 section 5: PRF(secret, label, seed) = P_<hash>(secret, label + seed).
func prf12(h func() hash.Hash, secret []byte, label string, seed []byte, length int) []byte {
	labelAndSeed := append([]byte(label), seed...)
	return pHash(h, secret, labelAndSeed, length)
}

// tls12Session is what the RFC 5705 exporter needs of a TLS 1.2 session.
type tls12Session struct {
	suite                *tls12Suite
	masterSecret         []byte
	clientRandom         []byte
	serverRandom         []byte
	extendedMasterSecret bool
}

// The labels RFC 5705 section 4 reserves, which the exporter refuses as
// crypto/tls does: "Labels here have the same definition as in TLS".
var reservedExporterLabels = map[string]bool{
	"client finished": true,
	"server finished": true,
	"master secret":   true,
	"key expansion":   true,
}

// exportKeyingMaterial12 is RFC 5705 section 4:
//
//	PRF(SecurityParameters.master_secret, label,
//	    SecurityParameters.client_random +
//	    SecurityParameters.server_random +
//	    context_value_length + context_value
//	    )[length]
//
// A nil context means "no context" (the seed has no length and value); a
// non-nil empty one is a zero-length context, as in crypto/tls.
func (s *tls12Session) exportKeyingMaterial(label string, context []byte, length int) ([]byte, error) {
	if reservedExporterLabels[label] {
		return nil, fmt.Errorf("handshaker: ExportKeyingMaterial: reserved label %q", label)
	}
	if !s.extendedMasterSecret {
		// RFC 7627 section 5.4 (and crypto/tls): without the extended master
		// secret the exporter's output is not bound to this connection.
		return nil, errors.New("handshaker: ExportKeyingMaterial: TLS 1.2 without the extended master secret")
	}
	seed := slices.Concat(s.clientRandom, s.serverRandom)
	if context != nil {
		if len(context) >= 1<<16 {
			return nil, errors.New("handshaker: ExportKeyingMaterial: context too long")
		}
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(context)))
		seed = append(seed, context...)
	}
	return prf12(s.suite.prfHash, s.masterSecret, label, seed, length), nil
}
