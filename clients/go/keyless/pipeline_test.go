package keyless_test

// Pipeline against the real service: many concurrent signatures on one
// Operate stream, a failed operation amid good ones, a caller that gives
// up, and a service that dies under the stream.

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/handshaker/handshaker/clients/go/internal/servicetest"
	"github.com/handshaker/handshaker/clients/go/keyless"
)

func pipelineKey(t *testing.T, p *keyless.Pipeline, name string) *keyless.Key {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	key, err := p.Key(ctx, name)
	if err != nil {
		t.Fatalf("Pipeline.Key(%s): %v", name, err)
	}
	return key
}

func TestPipelineManyConcurrentSigns(t *testing.T) {
	s := needService(t)
	p := keyless.NewPipeline(s.conn)
	defer p.Close()
	ecdsaKey := pipelineKey(t, p, credECDSA)
	rsaKey := pipelineKey(t, p, credRSA)
	denied := pipelineKey(t, p, credDecryptOnly)

	// ECDSA and RSA signatures interleaved (RSA ones take the service
	// longer, so answers come back out of order), each checked with its
	// key, with refused operations among them.
	const n = 300
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			message := fmt.Appendf(nil, "operation %d", i)
			switch i % 3 {
			case 0:
				d := digest(crypto.SHA256, message)
				signature, err := ecdsaKey.Sign(rand.Reader, d, crypto.SHA256)
				if err == nil && !ecdsa.VerifyASN1(ecdsaKey.Public().(*ecdsa.PublicKey), d, signature) {
					err = fmt.Errorf("operation %d: the ECDSA signature does not verify", i)
				}
				errs <- err
			case 1:
				d := digest(crypto.SHA384, message)
				signature, err := rsaKey.Sign(rand.Reader, d, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA384})
				if err == nil {
					err = rsa.VerifyPSS(rsaKey.Public().(*rsa.PublicKey), crypto.SHA384, d, signature, nil)
				}
				errs <- err
			default:
				// The OperationError comes back as the unary RPC's status.
				_, err := denied.Sign(rand.Reader, digest(crypto.SHA256, message), crypto.SHA256)
				if status.Code(err) != codes.PermissionDenied {
					errs <- fmt.Errorf("operation %d without a sign grant: %v", i, err)
				} else {
					errs <- nil
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	// A caller whose time runs out fails alone; the stream goes on.
	ecdsaKey.SetTimeout(time.Nanosecond)
	if _, err := ecdsaKey.Sign(rand.Reader, digest(crypto.SHA256, []byte("late")), crypto.SHA256); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("a sign with a 1ns timeout: %v", err)
	}
	ecdsaKey.SetTimeout(0)
	if _, err := ecdsaKey.Sign(rand.Reader, digest(crypto.SHA256, []byte("on time")), crypto.SHA256); err != nil {
		t.Fatalf("a sign after one that timed out: %v", err)
	}

	// A crypto/tls server on the pipeline's keys.
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	cert, err := p.Certificate(ctx, credRSA)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}})
	for _, version := range []uint16{tls.VersionTLS13, tls.VersionTLS12} {
		if err := dialTLS(addr, &tls.Config{RootCAs: s.devCA, ServerName: "localhost", MaxVersion: version}); err != nil {
			t.Fatalf("%s with a pipelined key: %v", tls.VersionName(version), err)
		}
	}

	p.Close()
	if _, err := rsaKey.Sign(rand.Reader, digest(crypto.SHA256, []byte("closed")), crypto.SHA256); status.Code(err) != codes.Canceled {
		t.Fatalf("a sign on a closed pipeline: %v", err)
	}
}

func TestPipelineStreamBreakageFailsEveryWaiter(t *testing.T) {
	s := needService(t)
	// A service of its own on the same keystore, to pause and kill.
	addr, err := servicetest.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	stop, process, err := servicetest.ServeProcess(s.bin, s.keystore, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			stop()
		}
	}()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	p := keyless.NewPipeline(conn)
	defer p.Close()
	key := pipelineKey(t, p, credECDSA)
	key.SetTimeout(ioTimeout)

	// Paused, the service answers nothing: the signs wait on the stream.
	if err := process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	const n = 20
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := key.Sign(rand.Reader, digest(crypto.SHA256, fmt.Appendf(nil, "waiting %d", i)), crypto.SHA256)
			errs <- err
		}()
	}
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-errs:
		t.Fatalf("a sign finished while the service was paused: %v", err)
	default:
	}
	if err := process.Kill(); err != nil {
		t.Fatal(err)
	}
	stop() // reaps it
	stopped = true
	started := time.Now()
	for range n {
		err := <-errs
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("a sign when the stream broke: %v", err)
		}
	}
	// Failed at once, not by their 20s timeout.
	if waited := time.Since(started); waited > 5*time.Second {
		t.Fatalf("the waiters failed after %v", waited)
	}

	// The service comes back; the next operation opens a new stream (once
	// gRPC has reconnected).
	stop, err = servicetest.Serve(s.bin, s.keystore, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := digest(crypto.SHA256, []byte("after the restart"))
		signature, err := key.Sign(rand.Reader, d, crypto.SHA256)
		if err == nil {
			if !ecdsa.VerifyASN1(key.Public().(*ecdsa.PublicKey), d, signature) {
				t.Fatal("the signature after the restart does not verify")
			}
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("a sign after the restart: %v", err)
		}
		if !strings.Contains(err.Error(), "keyless: sign") {
			t.Fatalf("an error without its operation: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
