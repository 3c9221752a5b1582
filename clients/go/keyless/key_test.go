package keyless_test

// Key against the real service: every signature is checked with the leaf's
// public key, decryption against a ciphertext made here, and the errors by
// their gRPC status.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/handshaker/handshaker/clients/go/keyless"
)

func digest(h crypto.Hash, message []byte) []byte {
	hash := h.New()
	hash.Write(message)
	return hash.Sum(nil)
}

func TestKeyDescribesTheCredential(t *testing.T) {
	s := needService(t)
	key := newKey(t, s, credECDSA)
	if key.Credential() != credECDSA || key.KeyType() != "ecdsa-p256" {
		t.Fatalf("credential %q key type %q", key.Credential(), key.KeyType())
	}
	if len(key.SubjectKeyID()) == 0 || len(key.CertificateChain()) == 0 {
		t.Fatal("no subject key id or chain")
	}
	if _, ok := key.Public().(*ecdsa.PublicKey); !ok {
		t.Fatalf("public key %T", key.Public())
	}
	if !key.Leaf().PublicKey.(*ecdsa.PublicKey).Equal(key.Public()) {
		t.Fatal("the public key is not the leaf's")
	}
	if _, ok := key.Decrypter(); ok {
		t.Fatal("an ECDSA key offers decryption")
	}
	cert := key.Certificate()
	if _, ok := cert.PrivateKey.(crypto.Decrypter); ok {
		t.Fatal("an ECDSA key's tls.Certificate implements crypto.Decrypter (crypto/tls would offer the RSA key exchange)")
	}
	if len(cert.SupportedSignatureAlgorithms) == 0 || cert.SupportedSignatureAlgorithms[0] != tls.ECDSAWithP256AndSHA256 {
		t.Fatalf("signature algorithms %v", cert.SupportedSignatureAlgorithms)
	}
	if cert.Leaf == nil || !bytes.Equal(cert.Leaf.Raw, cert.Certificate[0]) {
		t.Fatal("Leaf is not the chain's first certificate")
	}

	rsaKey := newKey(t, s, credRSA)
	if _, ok := rsaKey.Decrypter(); !ok {
		t.Fatal("an RSA key from the dev CA (keyEncipherment) does not decrypt")
	}
	if _, ok := rsaKey.Certificate().PrivateKey.(*keyless.Decrypter); !ok {
		t.Fatalf("the RSA tls.Certificate's PrivateKey is %T", rsaKey.Certificate().PrivateKey)
	}
}

func TestSignECDSA(t *testing.T) {
	s := needService(t)
	key := newKey(t, s, credECDSA)
	public := key.Public().(*ecdsa.PublicKey)
	message := []byte("an ECDSA signature from the keystore")
	// TLS 1.2 pairs any hash with the key's curve; the service signs each.
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		d := digest(h, message)
		signature, err := key.Sign(rand.Reader, d, h)
		if err != nil {
			t.Fatalf("Sign %v: %v", h, err)
		}
		if !ecdsa.VerifyASN1(public, d, signature) {
			t.Fatalf("the %v signature does not verify", h)
		}
		signature, err = key.SignMessage(rand.Reader, message, h)
		if err != nil {
			t.Fatalf("SignMessage %v: %v", h, err)
		}
		if !ecdsa.VerifyASN1(public, d, signature) {
			t.Fatalf("the %v message signature does not verify", h)
		}
	}
	// Longer than the service takes as a message: hashed here.
	long := bytes.Repeat([]byte("transcript"), 3000)
	signature, err := key.SignMessage(rand.Reader, long, crypto.SHA256)
	if err != nil {
		t.Fatalf("SignMessage of %d bytes: %v", len(long), err)
	}
	if !ecdsa.VerifyASN1(public, digest(crypto.SHA256, long), signature) {
		t.Fatal("the long message's signature does not verify")
	}
	if _, err := key.Sign(rand.Reader, []byte("short"), crypto.SHA256); err == nil || !strings.Contains(err.Error(), "digest is 32 bytes") {
		t.Fatalf("a 5-byte SHA-256 digest: %v", err)
	}
	if _, err := key.Sign(rand.Reader, message, crypto.Hash(0)); err == nil {
		t.Fatal("an ECDSA key signed without a hash")
	}
}

func TestSignRSA(t *testing.T) {
	s := needService(t)
	key := newKey(t, s, credRSA)
	public := key.Public().(*rsa.PublicKey)
	message := []byte("an RSA signature from the keystore")
	for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA384, crypto.SHA512} {
		d := digest(h, message)
		pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: h}
		signature, err := key.Sign(rand.Reader, d, pss)
		if err != nil {
			t.Fatalf("Sign PSS %v: %v", h, err)
		}
		// A fixed salt length: the service's must be the hash's, as TLS 1.3 requires.
		if err := rsa.VerifyPSS(public, h, d, signature, &rsa.PSSOptions{SaltLength: h.Size()}); err != nil {
			t.Fatalf("the PSS %v signature: %v", h, err)
		}
		signature, err = key.Sign(rand.Reader, d, h)
		if err != nil {
			t.Fatalf("Sign PKCS1 %v: %v", h, err)
		}
		if err := rsa.VerifyPKCS1v15(public, h, d, signature); err != nil {
			t.Fatalf("the PKCS#1 v1.5 %v signature: %v", h, err)
		}
	}
	_, err := key.Sign(rand.Reader, digest(crypto.SHA256, message), &rsa.PSSOptions{SaltLength: 20, Hash: crypto.SHA256})
	if err == nil || !strings.Contains(err.Error(), "salt") {
		t.Fatalf("a 20-byte PSS salt: %v", err)
	}
	_, err = key.Sign(rand.Reader, digest(crypto.SHA1, message), crypto.SHA1)
	if err == nil {
		t.Fatal("an RSA key signed SHA-1 (no TLS 1.2/1.3 scheme the service has)")
	}
}

func TestSignEd25519(t *testing.T) {
	s := needService(t)
	key := newKey(t, s, credEd25519)
	public := key.Public().(ed25519.PublicKey)
	message := []byte("Ed25519 signs the message itself")
	signature, err := key.Sign(rand.Reader, message, crypto.Hash(0))
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	if !ed25519.Verify(public, message, signature) {
		t.Fatal("the Ed25519 signature does not verify")
	}
	if _, err := key.Sign(rand.Reader, message, &ed25519.Options{Context: "ctx"}); err == nil {
		t.Fatal("Ed25519ctx was accepted")
	}
}

func TestSignErrorsKeepTheStatus(t *testing.T) {
	s := needService(t)
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()

	_, err := keyless.NewKey(ctx, s.conn, "nosuch")
	if status.Code(err) != codes.NotFound {
		t.Fatalf("an unknown credential: %v", err)
	}
	var callErr *keyless.Error
	if !errors.As(err, &callErr) || callErr.Op != "get credential" || callErr.Name != "nosuch" {
		t.Fatalf("an unknown credential: %#v", err)
	}
	if _, err := keyless.Certificate(ctx, s.conn, "nosuch"); status.Code(err) != codes.NotFound {
		t.Fatalf("Certificate of an unknown credential: %v", err)
	}

	_, err = keyless.NewKey(ctx, s.conn, credNoGrant)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a credential without a grant: %v", err)
	}

	// GetCredential takes any grant; Sign needs `sign`.
	key := newKey(t, s, credDecryptOnly)
	_, err = key.Sign(rand.Reader, digest(crypto.SHA256, []byte("x")), crypto.SHA256)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Sign without a sign grant: %v", err)
	}
	if !errors.As(err, &callErr) || callErr.Op != "sign" || callErr.Name != credDecryptOnly {
		t.Fatalf("Sign without a sign grant: %#v", err)
	}
	if !strings.Contains(err.Error(), "sign") {
		t.Fatalf("the error does not say which grant: %v", err)
	}

	// The per-call timeout is a DeadlineExceeded status that errors.Is sees.
	slow := newKey(t, s, credECDSA)
	slow.SetTimeout(time.Nanosecond)
	_, err = slow.Sign(rand.Reader, digest(crypto.SHA256, []byte("x")), crypto.SHA256)
	if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sign with a 1ns timeout: %v", err)
	}
}

func TestDecrypt(t *testing.T) {
	s := needService(t)
	key := newKey(t, s, credRSA)
	decrypter, ok := key.Decrypter()
	if !ok {
		t.Fatal("no Decrypter")
	}
	premaster := append([]byte{3, 3}, make([]byte, 46)...)
	if _, err := rand.Read(premaster[2:]); err != nil {
		t.Fatal(err)
	}
	ciphertext, err := rsa.EncryptPKCS1v15(rand.Reader, key.Public().(*rsa.PublicKey), premaster)
	if err != nil {
		t.Fatal(err)
	}
	opts := &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 48}
	plaintext, err := decrypter.Decrypt(rand.Reader, ciphertext, opts)
	if err != nil {
		t.Fatalf("Decrypt: %v", err)
	}
	if !bytes.Equal(plaintext, premaster) {
		t.Fatal("the premaster secret did not come back")
	}
	// Implicit rejection: a ciphertext that does not decrypt to 48 bytes is
	// answered with 48 other bytes, not an error.
	short, err := rsa.EncryptPKCS1v15(rand.Reader, key.Public().(*rsa.PublicKey), premaster[:47])
	if err != nil {
		t.Fatal(err)
	}
	plaintext, err = decrypter.Decrypt(rand.Reader, short, opts)
	if err != nil || len(plaintext) != 48 || bytes.Equal(plaintext[:47], premaster[:47]) {
		t.Fatalf("a 47-byte plaintext: %d bytes, %v", len(plaintext), err)
	}
	for _, bad := range []crypto.DecrypterOpts{nil, &rsa.PKCS1v15DecryptOptions{}, &rsa.PKCS1v15DecryptOptions{SessionKeyLen: 257}, &rsa.OAEPOptions{Hash: crypto.SHA256}} {
		if _, err := decrypter.Decrypt(rand.Reader, ciphertext, bad); err == nil {
			t.Fatalf("Decrypt with %#v was accepted", bad)
		}
	}

	// The grants are separate: this credential may sign but not decrypt...
	signOnly, ok := newKey(t, s, credRSASignOnly).Decrypter()
	if !ok {
		t.Fatal("the sign-only RSA key does not decrypt at all")
	}
	_, err = signOnly.Decrypt(rand.Reader, ciphertext, opts)
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("Decrypt without a decrypt grant: %v", err)
	}
	// ...and this one may decrypt but not sign.
	decryptOnly, ok := newKey(t, s, credDecryptOnly).Decrypter()
	if !ok {
		t.Fatal("the decrypt-only RSA key does not decrypt")
	}
	ciphertext, err = rsa.EncryptPKCS1v15(rand.Reader, decryptOnly.Public().(*rsa.PublicKey), premaster)
	if err != nil {
		t.Fatal(err)
	}
	if plaintext, err := decryptOnly.Decrypt(rand.Reader, ciphertext, opts); err != nil || !bytes.Equal(plaintext, premaster) {
		t.Fatalf("Decrypt with a decrypt grant: %v", err)
	}
}
