package handshaker

// Which Configs share a multiplexer, and how a connection's error result
// becomes a status; no service needed (channels connect lazily).

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/handshaker/handshaker/clients/go/gen/handshaker/v1"
)

func mustMultiplexer(t *testing.T, c *Config) *multiplexer {
	t.Helper()
	m, err := c.multiplexer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeMultiplexer(m.key) })
	return m
}

func TestMultiplexerIsSharedByTheConfigsOfOneChannel(t *testing.T) {
	const addr, other = "127.0.0.1:1", "127.0.0.1:2"
	t.Cleanup(func() {
		closeChannel(channelKey{addr: addr})
		closeChannel(channelKey{addr: other})
	})
	byAddr := mustMultiplexer(t, &Config{ServiceAddr: addr, Multiplex: true})
	if m := mustMultiplexer(t, &Config{ServiceAddr: addr, ServerName: "another", Multiplex: true}); m != byAddr {
		t.Error("two Configs for one address have different multiplexers")
	}
	if m := mustMultiplexer(t, &Config{ServiceAddr: other, Multiplex: true}); m == byAddr {
		t.Error("two addresses share a multiplexer")
	}
	owned := &Config{ServiceAddr: addr, DialOptions: []grpc.DialOption{grpc.WithUserAgent("test")}}
	ownMux := mustMultiplexer(t, owned)
	if ownMux == byAddr || mustMultiplexer(t, owned) != ownMux {
		t.Error("a Config with DialOptions does not have a multiplexer of its own, kept")
	}

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	byService := mustMultiplexer(t, &Config{Service: cc})
	if m := mustMultiplexer(t, &Config{Service: cc, Credential: "x"}); m != byService || m == byAddr {
		t.Error("two Configs with one Service do not share a multiplexer of their own")
	}
	if byService.cc != cc || byAddr.cc == nil {
		t.Error("a multiplexer does not know its *grpc.ClientConn")
	}
}

func TestConnectionErrorCarriesTheStatusCode(t *testing.T) {
	for _, tc := range []struct {
		code uint32
		want codes.Code
	}{
		{uint32(codes.NotFound), codes.NotFound},
		{uint32(codes.ResourceExhausted), codes.ResourceExhausted},
		{uint32(codes.OK), codes.Unknown}, // an error result is never success
		{99, codes.Code(99)},
	} {
		err := serviceError(connectionError(tc.code, "what went wrong"))
		if err == nil || status.Code(err) != tc.want {
			t.Errorf("code %d: %v has status %v, want %v", tc.code, err, status.Code(err), tc.want)
		}
		if s, ok := status.FromError(errors.Unwrap(err)); !ok || s.Message() != "what went wrong" {
			t.Errorf("code %d: %v does not wrap the status with its message", tc.code, err)
		}
	}
}

func TestMultiplexerOfAClosedChannelIsDropped(t *testing.T) {
	cc, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	config := &Config{Service: cc, Multiplex: true}
	m := mustMultiplexer(t, config)
	cc.Close()
	// The next handshake finds the channel closed, and so does its stream.
	mc := m.connect()
	_, err = mc.exchange(t.Context(), &pb.HandshakeRequest{})
	mc.close()
	if status.Code(err) != codes.Canceled {
		t.Errorf("exchange on a closed channel: %v, want status Canceled", err)
	}
	// The stream's goroutine drops the multiplexer right after failing it.
	kept := true
	for deadline := time.Now().Add(5 * time.Second); kept && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		channels.Lock()
		_, kept = channels.muxes[m.key]
		channels.Unlock()
	}
	if kept || m.ctx.Err() == nil {
		t.Errorf("the multiplexer of a closed channel is still cached (%v) or running (%v)", kept, m.ctx.Err() == nil)
	}
	if again := mustMultiplexer(t, config); again == m {
		t.Error("the closed channel's multiplexer was handed out again")
	}
}
