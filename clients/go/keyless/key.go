package keyless

// Key: a crypto.Signer (and, for keys that decrypt, a crypto.Decrypter) whose
// private half stays in the service's keystore.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

// DefaultTimeout bounds each Sign and Decrypt a Key makes. crypto.Signer and
// crypto.Decrypter take no context, and crypto/tls calls them in the middle of
// a handshake, so without a bound a service that stopped answering would hold
// the handshake (and its peer) forever. Five seconds is far above a keystore
// signature, HSM ones included, and below the patience of most peers.
// Key.SetTimeout changes it per Key.
const DefaultTimeout = 5 * time.Second

// maxSignMessage is the service's limit on SignRequest.message; a longer
// message (a TLS 1.2 client's CertificateVerify over a long transcript) is
// hashed here and sent as a digest.
const maxSignMessage = 16384

// TLS SignatureScheme code points (IANA) the mapping from crypto.SignerOpts uses.
const (
	schemeRSAPKCS1SHA256 = 0x0401
	schemeRSAPKCS1SHA384 = 0x0501
	schemeRSAPKCS1SHA512 = 0x0601
	schemeECDSAP256      = 0x0403
	schemeECDSAP384      = 0x0503
	schemeECDSAP521      = 0x0603
	schemePSSRSAESHA256  = 0x0804
	schemePSSRSAESHA384  = 0x0805
	schemePSSRSAESHA512  = 0x0806
	schemeEd25519        = 0x0807
	schemePSSPSSSHA256   = 0x0809
	schemePSSPSSSHA384   = 0x080a
	schemePSSPSSSHA512   = 0x080b
)

// Key is a credential's key in the service's keystore. It implements
// crypto.Signer and crypto.MessageSigner; every signature is a KeyOperations
// Sign call (the caller needs a `sign` grant on the credential). A Key is safe
// for concurrent use.
//
// A Key names its key to the service by the subjectKeyIdentifier of the leaf
// certificate it was created with, not by the credential name: if the
// credential is rotated to another key, a Sign fails with NotFound instead of
// signing with a key that no longer matches the certificate this process
// presents (which peers would reject as a bad signature, with no hint why).
// Call NewKey or Certificate again to pick up a rotated credential.
type Key struct {
	ops      operations
	ref      *pb.KeyReference
	name     string
	public   crypto.PublicKey
	chain    [][]byte
	leaf     *x509.Certificate
	keyType  string
	schemes  []tls.SignatureScheme
	decrypts bool
	keyID    []byte
	timeout  atomic.Int64 // a time.Duration; 0 is DefaultTimeout
}

// Decrypter is a Key that also implements crypto.Decrypter, for TLS 1.2's
// RSA key exchange (each Decrypt is a KeyOperations Decrypt call and needs a
// `decrypt` grant). It exists only for keys whose GetCredential answer says
// they decrypt: crypto/tls offers the RSA key exchange whenever the
// certificate's PrivateKey implements crypto.Decrypter, so a key that cannot
// decrypt must not look as if it could.
type Decrypter struct {
	*Key
}

// NewKey asks the service for the credential (GetCredential, which needs any
// grant on it) and returns its Key. ctx bounds that call; without a deadline
// of its own it gets DefaultTimeout.
func NewKey(ctx context.Context, conn grpc.ClientConnInterface, credential string) (*Key, error) {
	return newKey(ctx, unary{pb.NewKeyOperationsClient(conn)}, credential)
}

// Certificate returns a tls.Certificate for the credential: its chain, the
// parsed leaf, the signature schemes the key signs with, and a *Key (or,
// when the key decrypts, a *Decrypter) as PrivateKey. The private key never
// enters this process.
//
// Whether a key decrypts is the key's property, not the caller's grant: a
// server that lists a TLS_RSA_* suite (crypto/tls offers none unless
// Config.CipherSuites names it) with a credential it holds no `decrypt`
// grant on fails those handshakes with PermissionDenied. List the RSA key
// exchange only with the grant.
func Certificate(ctx context.Context, conn grpc.ClientConnInterface, credential string) (tls.Certificate, error) {
	key, err := NewKey(ctx, conn, credential)
	if err != nil {
		return tls.Certificate{}, err
	}
	return key.Certificate(), nil
}

func newKey(ctx context.Context, ops operations, credential string) (*Key, error) {
	ctx, cancel := withDefaultTimeout(ctx, DefaultTimeout)
	defer cancel()
	ref := &pb.KeyReference{Key: &pb.KeyReference_Credential{Credential: credential}}
	described, err := ops.getCredential(ctx, &pb.GetCredentialRequest{Key: ref})
	if err != nil {
		return nil, callError("get credential", credential, err)
	}
	if len(described.CertificateChain) == 0 {
		return nil, fmt.Errorf("keyless: get credential (%s): the service sent no certificate", credential)
	}
	leaf, err := x509.ParseCertificate(described.CertificateChain[0])
	if err != nil {
		return nil, fmt.Errorf("keyless: get credential (%s): the leaf certificate: %w", credential, err)
	}
	key := &Key{
		ops:      ops,
		ref:      ref,
		name:     described.Credential,
		public:   leaf.PublicKey,
		chain:    described.CertificateChain,
		leaf:     leaf,
		keyType:  described.KeyType,
		decrypts: described.Decrypts,
		keyID:    described.SubjectKeyId,
	}
	if key.name == "" {
		key.name = credential
	}
	if len(key.keyID) > 0 {
		key.ref = &pb.KeyReference{Key: &pb.KeyReference_SubjectKeyId{SubjectKeyId: key.keyID}}
	}
	for _, scheme := range described.SignatureSchemes {
		key.schemes = append(key.schemes, tls.SignatureScheme(scheme))
	}
	return key, nil
}

// Public returns the leaf certificate's public key.
func (k *Key) Public() crypto.PublicKey { return k.public }

// Credential is the credential's keystore name.
func (k *Key) Credential() string { return k.name }

// KeyType is the key type as `handshaker keys list` spells it (ecdsa-p256, rsa-2048, ...).
func (k *Key) KeyType() string { return k.keyType }

// SignatureSchemes are the TLS signature schemes the key signs with, most preferred first.
func (k *Key) SignatureSchemes() []tls.SignatureScheme {
	return append([]tls.SignatureScheme(nil), k.schemes...)
}

// SubjectKeyID is the leaf's subjectKeyIdentifier, by which the Key names its key.
func (k *Key) SubjectKeyID() []byte { return append([]byte(nil), k.keyID...) }

// CertificateChain is the credential's chain (DER, leaf first).
func (k *Key) CertificateChain() [][]byte { return append([][]byte(nil), k.chain...) }

// Leaf is the parsed leaf certificate.
func (k *Key) Leaf() *x509.Certificate { return k.leaf }

// Decrypter returns the Key as a crypto.Decrypter when the service says the
// key decrypts (an RSA key whose certificate allows keyEncipherment), else
// false.
func (k *Key) Decrypter() (*Decrypter, bool) {
	if !k.decrypts {
		return nil, false
	}
	return &Decrypter{k}, true
}

// Certificate returns the tls.Certificate of the Key (see the package-level
// Certificate).
func (k *Key) Certificate() tls.Certificate {
	var private crypto.Signer = k
	if d, ok := k.Decrypter(); ok {
		private = d
	}
	return tls.Certificate{
		Certificate:                  k.CertificateChain(),
		PrivateKey:                   private,
		Leaf:                         k.leaf,
		SupportedSignatureAlgorithms: k.SignatureSchemes(),
	}
}

// SetTimeout sets the bound on each Sign and Decrypt of this Key (0:
// DefaultTimeout). It may be called at any time; calls already running keep
// their bound.
func (k *Key) SetTimeout(d time.Duration) { k.timeout.Store(int64(d)) }

func (k *Key) callContext() (context.Context, context.CancelFunc) {
	d := time.Duration(k.timeout.Load())
	if d <= 0 {
		d = DefaultTimeout
	}
	return context.WithTimeout(context.Background(), d)
}

// Sign signs digest, the hash of the content that opts.HashFunc() names, or
// for Ed25519 (opts.HashFunc() == 0) the message itself. opts chooses the TLS
// signature scheme: *rsa.PSSOptions is RSA-PSS with that hash (MGF1 and a
// salt as long as the hash, which is what TLS 1.3 requires), a bare hash is
// RSASSA-PKCS1-v1_5 for an RSA key and ECDSA with that hash for an ECDSA
// key. rand is unused: the service draws its own randomness.
func (k *Key) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	scheme, hash, err := k.scheme(opts)
	if err != nil {
		return nil, err
	}
	request := &pb.SignRequest{Key: k.ref, SignatureScheme: scheme}
	if hash == 0 {
		request.Input = &pb.SignRequest_Message{Message: digest}
	} else {
		if len(digest) != hash.Size() {
			return nil, fmt.Errorf("keyless: sign (%s): a %v digest is %d bytes, not %d", k.name, hash, hash.Size(), len(digest))
		}
		request.Input = &pb.SignRequest_Digest{Digest: digest}
	}
	return k.sign(request)
}

// SignMessage signs message with the scheme opts chooses (as Sign does),
// sending the message itself so that the service hashes it: a keystore
// backend that signs only whole messages (some HSM and KMS plugins) can then
// serve crypto/tls, which prefers SignMessage when a key has it. A message
// longer than the service takes is hashed here and signed as a digest.
func (k *Key) SignMessage(_ io.Reader, message []byte, opts crypto.SignerOpts) ([]byte, error) {
	scheme, hash, err := k.scheme(opts)
	if err != nil {
		return nil, err
	}
	request := &pb.SignRequest{Key: k.ref, SignatureScheme: scheme}
	switch {
	case hash == 0 || len(message) <= maxSignMessage:
		request.Input = &pb.SignRequest_Message{Message: message}
	default:
		h := hash.New()
		h.Write(message)
		request.Input = &pb.SignRequest_Digest{Digest: h.Sum(nil)}
	}
	return k.sign(request)
}

func (k *Key) sign(request *pb.SignRequest) ([]byte, error) {
	ctx, cancel := k.callContext()
	defer cancel()
	signature, err := k.ops.sign(ctx, request)
	if err != nil {
		return nil, callError("sign", k.name, err)
	}
	return signature, nil
}

// scheme maps opts to the TLS signature scheme for this key, and the hash
// the input must be a digest of (0: the message itself).
func (k *Key) scheme(opts crypto.SignerOpts) (uint32, crypto.Hash, error) {
	if opts == nil {
		return 0, 0, fmt.Errorf("keyless: sign (%s): no crypto.SignerOpts", k.name)
	}
	hash := opts.HashFunc()
	unsupported := func(what string) (uint32, crypto.Hash, error) {
		return 0, 0, fmt.Errorf("keyless: sign (%s): a %s key has no TLS signature scheme for %s", k.name, k.keyType, what)
	}
	switch k.public.(type) {
	case *rsa.PublicKey:
		if pss, ok := opts.(*rsa.PSSOptions); ok {
			// The service's PSS salt is as long as the hash. A caller asking
			// for PSSSaltLengthAuto leaves the length to the signer, and a
			// verifier in auto mode accepts any; another fixed length would
			// not verify.
			if pss.SaltLength != rsa.PSSSaltLengthEqualsHash && pss.SaltLength != rsa.PSSSaltLengthAuto && pss.SaltLength != hash.Size() {
				return unsupported(fmt.Sprintf("RSA-PSS with a %d-byte salt (the service's salt is the hash's length)", pss.SaltLength))
			}
			switch hash {
			case crypto.SHA256:
				return k.pss(schemePSSRSAESHA256, schemePSSPSSSHA256), hash, nil
			case crypto.SHA384:
				return k.pss(schemePSSRSAESHA384, schemePSSPSSSHA384), hash, nil
			case crypto.SHA512:
				return k.pss(schemePSSRSAESHA512, schemePSSPSSSHA512), hash, nil
			}
			return unsupported(fmt.Sprintf("RSA-PSS with %v", hash))
		}
		switch hash {
		case crypto.SHA256:
			return schemeRSAPKCS1SHA256, hash, nil
		case crypto.SHA384:
			return schemeRSAPKCS1SHA384, hash, nil
		case crypto.SHA512:
			return schemeRSAPKCS1SHA512, hash, nil
		}
		return unsupported(fmt.Sprintf("RSASSA-PKCS1-v1_5 with %v", hash))
	case *ecdsa.PublicKey:
		// TLS 1.2 pairs any ECDSA hash with any curve; the scheme's name only
		// carries the hash to the service, which signs with the key's curve.
		switch hash {
		case crypto.SHA256:
			return schemeECDSAP256, hash, nil
		case crypto.SHA384:
			return schemeECDSAP384, hash, nil
		case crypto.SHA512:
			return schemeECDSAP521, hash, nil
		}
		return unsupported(fmt.Sprintf("ECDSA with %v", hash))
	case ed25519.PublicKey:
		if o, ok := opts.(*ed25519.Options); ok && o.Context != "" {
			return unsupported("Ed25519ctx")
		}
		if hash != 0 {
			return unsupported("Ed25519ph (TLS signs Ed25519 over the message)")
		}
		return schemeEd25519, 0, nil
	}
	return unsupported(fmt.Sprintf("%T", k.public))
}

// pss picks the rsa_pss_rsae scheme (an rsaEncryption key, the usual one),
// unless the credential lists only the rsa_pss_pss one (an RSASSA-PSS key).
func (k *Key) pss(rsae, pssPSS uint32) uint32 {
	for _, s := range k.schemes {
		if uint32(s) == rsae {
			return rsae
		}
	}
	for _, s := range k.schemes {
		if uint32(s) == pssPSS {
			return pssPSS
		}
	}
	return rsae
}

// Decrypt decrypts an RSAES-PKCS1-v1_5 ciphertext (TLS 1.2's
// EncryptedPreMasterSecret). opts must be *rsa.PKCS1v15DecryptOptions with a
// SessionKeyLen of 1 to 256 (crypto/tls passes 48): the service decrypts
// with implicit rejection only, returning SessionKeyLen random bytes when the
// ciphertext does not decrypt to that length, so that neither an error nor a
// length tells a peer that its ciphertext was bad (RFC 5246 section
// 7.4.7.1). rand is unused.
func (d *Decrypter) Decrypt(_ io.Reader, ciphertext []byte, opts crypto.DecrypterOpts) ([]byte, error) {
	o, ok := opts.(*rsa.PKCS1v15DecryptOptions)
	if !ok || o == nil {
		return nil, fmt.Errorf("keyless: decrypt (%s): only RSAES-PKCS1-v1_5 with a SessionKeyLen (*rsa.PKCS1v15DecryptOptions), not %T", d.name, opts)
	}
	if o.SessionKeyLen < 1 || o.SessionKeyLen > 256 {
		return nil, fmt.Errorf("keyless: decrypt (%s): SessionKeyLen must be 1 to 256, not %d (the service always answers that many bytes)", d.name, o.SessionKeyLen)
	}
	ctx, cancel := d.callContext()
	defer cancel()
	plaintext, err := d.ops.decrypt(ctx, &pb.DecryptRequest{
		Key:             d.ref,
		Ciphertext:      ciphertext,
		PlaintextLength: uint32(o.SessionKeyLen),
	})
	if err != nil {
		return nil, callError("decrypt", d.name, err)
	}
	if len(plaintext) != o.SessionKeyLen {
		return nil, fmt.Errorf("keyless: decrypt (%s): the service answered %d bytes, not %d", d.name, len(plaintext), o.SessionKeyLen)
	}
	return plaintext, nil
}

// operations are the key operations a Key makes: unary RPCs, or a Pipeline's
// Operate stream.
type operations interface {
	sign(ctx context.Context, request *pb.SignRequest) ([]byte, error)
	decrypt(ctx context.Context, request *pb.DecryptRequest) ([]byte, error)
	getCredential(ctx context.Context, request *pb.GetCredentialRequest) (*pb.GetCredentialResponse, error)
}

type unary struct{ client pb.KeyOperationsClient }

func (u unary) sign(ctx context.Context, request *pb.SignRequest) ([]byte, error) {
	response, err := u.client.Sign(ctx, request)
	if err != nil {
		return nil, err
	}
	return response.Signature, nil
}

func (u unary) decrypt(ctx context.Context, request *pb.DecryptRequest) ([]byte, error) {
	response, err := u.client.Decrypt(ctx, request)
	if err != nil {
		return nil, err
	}
	return response.Plaintext, nil
}

func (u unary) getCredential(ctx context.Context, request *pb.GetCredentialRequest) (*pb.GetCredentialResponse, error) {
	return u.client.GetCredential(ctx, request)
}

// withDefaultTimeout bounds ctx by d unless it has a deadline already.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if ctx == nil {
		ctx = context.Background()
	}
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

var (
	_ crypto.Signer        = (*Key)(nil)
	_ crypto.MessageSigner = (*Key)(nil)
	_ crypto.Decrypter     = (*Decrypter)(nil)
)
