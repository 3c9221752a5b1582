// Package keyless plugs the handshaker service's KeyOperations and
// CertificateValidator (protos/handshaker/v1/keyless.proto) into stock
// crypto/tls: the handshake runs in this process, but the private key stays
// in the service's keystore (or its HSM) and the peer's chain is judged by
// the service's trust bundles.
//
// A server with a keyless certificate, whose peers may check their own way:
//
//	conn, err := grpc.NewClient("127.0.0.1:50051",
//		grpc.WithTransportCredentials(insecure.NewCredentials()))
//	cert, err := keyless.Certificate(ctx, conn, "web") // GetCredential; needs a grant on "web"
//	server := &http.Server{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
//	err = server.ListenAndServeTLS("", "")
//
// Each handshake's signature is a Sign call (a `sign` grant), and for an RSA
// credential whose certificate allows keyEncipherment and a server that lists
// a TLS_RSA_* suite, the TLS 1.2 premaster secret is a Decrypt call (a
// `decrypt` grant). Neither takes a context, so each is bounded by
// DefaultTimeout (Key.SetTimeout changes it). A busy server can put all of
// its keys' operations on one Operate stream with a Pipeline:
//
//	ops := keyless.NewPipeline(conn)
//	cert, err := ops.Certificate(ctx, "web")
//
// A client (or a server asking for client certificates) whose peer's chain
// the service validates:
//
//	validator := keyless.NewValidator(conn, "") // the keystore's "default" bundle
//	config := &tls.Config{
//		InsecureSkipVerify: true, // the hook below replaces Go's verification; it does not skip it
//		VerifyConnection:   validator.VerifyConnection(keyless.Options{Purpose: keyless.ServerAuth}),
//	}
//	serverConfig := &tls.Config{
//		Certificates:     []tls.Certificate{cert},
//		ClientAuth:       tls.RequireAnyClientCert, // require one; the hook judges it
//		VerifyConnection: validator.VerifyConnection(keyless.Options{Purpose: keyless.ClientAuth}),
//	}
//
// Failed calls return an *Error that keeps the gRPC status (status.Code(err)
// is NotFound for an unknown credential, PermissionDenied without the grant,
// InvalidArgument naming the field, Unavailable when the key's backend is
// down); a chain the service calls invalid is a *ChainError with the TLS
// alert and the reason.
package keyless
