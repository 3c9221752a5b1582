package handshaker

// The crypto/tls-style entry points: Dial for the client role, NewListener
// and Listen for the server role.

import (
	"context"
	"net"
)

// Dial connects to addr on the named network and runs a client-role TLS
// handshake through the handshaker service, on a Handshake stream of its own
// (or on a shared Multiplex stream with Config.Multiplex). ctx bounds the
// connect and the handshake. The returned net.Conn is a *Conn.
//
// The server name is config.ServerName, else the host part of addr. A nil
// config is the zero Config.
func Dial(ctx context.Context, network, addr string, config *Config) (net.Conn, error) {
	config = config.orDefault()
	serverName := config.ServerName
	if serverName == "" {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		serverName = host
	}
	var dialer net.Dialer
	raw, err := dialer.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := &Conn{conn: raw, config: config, isClient: true, serverName: serverName}
	if err := conn.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, err
	}
	return conn, nil
}

// NewListener returns a listener whose Accept wraps each connection of inner
// in a server-role *Conn. The handshake runs in the service on the
// connection's first Read or Write (or an explicit Handshake), in the
// goroutine that serves it, so a failed handshake fails only that connection.
func NewListener(inner net.Listener, config *Config) net.Listener {
	return &listener{Listener: inner, config: config.orDefault()}
}

// Listen listens on the named network and address and wraps the listener
// with NewListener.
func Listen(network, addr string, config *Config) (net.Listener, error) {
	inner, err := net.Listen(network, addr)
	if err != nil {
		return nil, err
	}
	return NewListener(inner, config), nil
}

type listener struct {
	net.Listener
	config *Config
}

func (l *listener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Server(conn, l.config), nil
}
