package handshaker_test

// The harness for tests against a real handshaker service: TestMain builds a
// keystore in a temporary directory, starts `handshaker serve` on a free
// loopback port and stops it when the tests end.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/handshaker/handshaker/clients/go/internal/servicetest"
)

// testService describes the running service and its keystore.
type testService struct {
	bin      string
	addr     string
	keystore string
	// devCAPEM is the keystore's development CA, which issued every credential.
	devCAPEM []byte
	devCA    *x509.CertPool
	// localhost and client are keystore credentials (SANs DNS:localhost +
	// IP:127.0.0.1, and DNS:client), loaded for crypto/tls peers.
	localhost tls.Certificate
	client    tls.Certificate
	// rsa is an RSA credential (DNS:rsa.test), for the TLS 1.2 ECDHE_RSA suites.
	rsa tls.Certificate
}

var (
	svc *testService
	// skipReason says why service tests skip; empty when the service runs.
	skipReason string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	bin, err := handshakerBinary()
	if err != nil {
		skipReason = err.Error()
		fmt.Fprintln(os.Stderr, "handshaker tests: skipping service tests:", skipReason)
		return m.Run()
	}
	service, stop, err := startService(bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "handshaker tests: cannot start the service:", err)
		return 1
	}
	defer stop()
	svc = service
	os.Setenv("HANDSHAKER_ADDR", service.addr)
	return m.Run()
}

// needService skips t when no service binary was found.
func needService(t *testing.T) *testService {
	t.Helper()
	if svc == nil {
		t.Skip("no handshaker service: " + skipReason)
	}
	return svc
}

// handshakerBinary is $HANDSHAKER_BIN, else the project venv's handshaker.
func handshakerBinary() (string, error) { return servicetest.Binary() }

func startService(bin string) (*testService, func(), error) {
	dir, err := os.MkdirTemp("", "handshaker-go-test-")
	if err != nil {
		return nil, nil, err
	}
	removeDir := func() { os.RemoveAll(dir) }
	keystore := filepath.Join(dir, "keystore")
	// Callers of the test service are `local` on loopback TCP and this uid on the Unix
	// socket; the policy grants both the two credentials and the dev-ca bundle.
	uid := fmt.Sprintf("unix:uid=%d", os.Getuid())
	for _, args := range [][]string{
		{"keys", "generate", "localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1", "--default", "--allow", "local", "--allow", uid, "--keystore", keystore},
		{"keys", "generate", "client", "--san", "DNS:client", "--allow", "local", "--allow", uid, "--keystore", keystore},
		{"keys", "generate", "rsa", "--san", "DNS:rsa.test", "--key-type", "rsa-2048", "--allow", "local", "--allow", uid, "--keystore", keystore},
		{"keys", "allow", "dev-ca", "local", "--trust-bundle", "--keystore", keystore},
		{"keys", "allow", "dev-ca", uid, "--trust-bundle", "--keystore", keystore},
	} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			removeDir()
			return nil, nil, fmt.Errorf("%s %v: %w\n%s", bin, args[:3], err, out)
		}
	}
	service := &testService{bin: bin, keystore: keystore}
	if service.devCAPEM, err = os.ReadFile(filepath.Join(keystore, "dev-ca", "ca.crt")); err != nil {
		removeDir()
		return nil, nil, err
	}
	service.devCA = x509.NewCertPool()
	service.devCA.AppendCertsFromPEM(service.devCAPEM)
	for name, cert := range map[string]*tls.Certificate{"localhost": &service.localhost, "client": &service.client, "rsa": &service.rsa} {
		if *cert, err = tls.LoadX509KeyPair(filepath.Join(keystore, name, "tls.crt"), filepath.Join(keystore, name, "tls.key")); err != nil {
			removeDir()
			return nil, nil, err
		}
	}
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	service.addr = probe.Addr().String()
	probe.Close()
	stop, err := serve(bin, keystore, "tcp", service.addr)
	if err != nil {
		removeDir()
		return nil, nil, err
	}
	return service, func() { stop(); removeDir() }, nil
}

// serve runs `handshaker serve` on a keystore until stop is called; it
// returns once the service accepts connections at network/addr.
func serve(bin, keystore, network, addr string) (stop func(), err error) {
	return servicetest.Serve(bin, keystore, network, addr)
}

// serveProcess is serve that also returns the service's process, for tests
// that pause or kill it; stop still waits for it to exit.
func serveProcess(bin, keystore, network, addr string) (stop func(), process *os.Process, err error) {
	return servicetest.ServeProcess(bin, keystore, network, addr)
}
