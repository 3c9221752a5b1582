package keyless_test

// The harness: TestMain builds a keystore with the credentials the tests
// use, starts a real `handshaker serve` on it (internal/servicetest) and
// dials it. The private keys stay in the keystore directory, which only the
// service reads: the tests' crypto/tls peers that use them go through the
// keyless package.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/handshaker/handshaker/clients/go/internal/servicetest"
	"github.com/handshaker/handshaker/clients/go/keyless"
)

// ioTimeout bounds every socket and subprocess a test runs, so that a broken
// peer fails the test instead of hanging it.
const ioTimeout = 20 * time.Second

type testService struct {
	bin      string
	addr     string
	keystore string
	conn     *grpc.ClientConn
	// devCAFile is the development CA (PEM) that issued every credential.
	devCAFile string
	devCA     *x509.CertPool
	// foreign is a server credential from another keystore's development
	// CA, which the service's default trust bundle does not know.
	foreign tls.Certificate
}

// The keystore's credentials, all granted to `local` (loopback callers)
// unless the name says otherwise.
const (
	credECDSA       = "web"          // ecdsa-p256, DNS:localhost IP:127.0.0.1, sign
	credRSA         = "legacy"       // rsa-2048, DNS:localhost IP:127.0.0.1, sign and decrypt
	credEd25519     = "ed"           // ed25519, DNS:localhost, sign
	credClient      = "client"       // ecdsa-p256, DNS:client, sign (a TLS client's key)
	credDecryptOnly = "decrypt-only" // rsa-2048, decrypt only: GetCredential yes, Sign no
	credNoGrant     = "no-grant"     // ecdsa-p256, no grant at all
	credRSASignOnly = "rsa-sign"     // rsa-2048, sign only: Decrypt no
)

var (
	svc        *testService
	skipReason string
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	bin, err := servicetest.Binary()
	if err != nil {
		skipReason = err.Error()
		fmt.Fprintln(os.Stderr, "keyless tests: skipping service tests:", skipReason)
		return m.Run()
	}
	service, stop, err := startService(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyless tests: cannot start the service:", err)
		return 1
	}
	defer stop()
	svc = service
	return m.Run()
}

func needService(t *testing.T) *testService {
	t.Helper()
	if svc == nil {
		t.Skip("no handshaker service: " + skipReason)
	}
	return svc
}

func startService(bin string) (*testService, func(), error) {
	dir, err := os.MkdirTemp("", "handshaker-go-keyless-test-")
	if err != nil {
		return nil, nil, err
	}
	cleanup := []func(){func() { os.RemoveAll(dir) }}
	stopAll := func() {
		for i := len(cleanup) - 1; i >= 0; i-- {
			cleanup[i]()
		}
	}
	fail := func(err error) (*testService, func(), error) {
		stopAll()
		return nil, nil, err
	}
	keystore := filepath.Join(dir, "keystore")
	foreignStore := filepath.Join(dir, "foreign")
	generate := [][]string{
		{"generate", credECDSA, "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--key-type", "ecdsa-p256"},
		{"generate", credRSA, "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--key-type", "rsa-2048"},
		{"generate", credEd25519, "--san", "DNS:localhost", "--key-type", "ed25519"},
		{"generate", credClient, "--san", "DNS:client", "--key-type", "ecdsa-p256"},
		{"generate", credDecryptOnly, "--san", "DNS:localhost", "--key-type", "rsa-2048"},
		{"generate", credNoGrant, "--san", "DNS:localhost"},
		{"generate", credRSASignOnly, "--san", "DNS:localhost", "--key-type", "rsa-2048"},
	}
	// The first one creates the dev CA; the others write folders of their
	// own and run at once (each is a second of Python startup), as does the
	// foreign keystore's. The grants edit policy.toml, so they go one by one.
	if err := servicetest.Keys(bin, keystore, generate[0]...); err != nil {
		return fail(err)
	}
	errs := make(chan error, len(generate))
	for _, args := range generate[1:] {
		go func() { errs <- servicetest.Keys(bin, keystore, args...) }()
	}
	go func() {
		// A peer from a CA the service does not trust: another keystore's dev CA.
		errs <- servicetest.Keys(bin, foreignStore, "generate", "foreign", "--san", "DNS:localhost")
	}()
	for range generate {
		if err := <-errs; err != nil {
			return fail(err)
		}
	}
	for _, args := range [][]string{
		{"allow", credECDSA, "local", "--role", "sign"},
		{"allow", credRSA, "local", "--role", "sign", "--role", "decrypt"},
		{"allow", credEd25519, "local", "--role", "sign"},
		{"allow", credClient, "local", "--role", "sign"},
		{"allow", credDecryptOnly, "local", "--role", "decrypt"},
		{"allow", credRSASignOnly, "local", "--role", "sign"},
	} {
		if err := servicetest.Keys(bin, keystore, args...); err != nil {
			return fail(err)
		}
	}
	service := &testService{bin: bin, keystore: keystore, devCAFile: filepath.Join(keystore, "dev-ca", "ca.crt")}
	caPEM, err := os.ReadFile(service.devCAFile)
	if err != nil {
		return fail(err)
	}
	service.devCA = x509.NewCertPool()
	service.devCA.AppendCertsFromPEM(caPEM)

	if service.foreign, err = tls.LoadX509KeyPair(filepath.Join(foreignStore, "foreign", "tls.crt"), filepath.Join(foreignStore, "foreign", "tls.key")); err != nil {
		return fail(err)
	}

	if service.addr, err = servicetest.FreeAddr(); err != nil {
		return fail(err)
	}
	stop, err := servicetest.Serve(bin, keystore, "tcp", service.addr)
	if err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, stop)
	if service.conn, err = grpc.NewClient(service.addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		return fail(err)
	}
	cleanup = append(cleanup, func() { service.conn.Close() })
	// The service rereads the keystore each second; the last credential made
	// is visible once GetCredential finds it.
	if err := awaitCredential(service.conn, credRSASignOnly); err != nil {
		return fail(err)
	}
	return service, stopAll, nil
}

func awaitCredential(conn grpc.ClientConnInterface, name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := keyless.NewKey(ctx, conn, name)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the credential %s did not appear: %w", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// newKey is keyless.NewKey with a bounded context, failing the test on error.
func newKey(t *testing.T, s *testService, name string) *keyless.Key {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	key, err := keyless.NewKey(ctx, s.conn, name)
	if err != nil {
		t.Fatalf("NewKey(%s): %v", name, err)
	}
	return key
}

func certificate(t *testing.T, s *testService, name string) tls.Certificate {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	cert, err := keyless.Certificate(ctx, s.conn, name)
	if err != nil {
		t.Fatalf("Certificate(%s): %v", name, err)
	}
	return cert
}
