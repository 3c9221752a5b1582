/**
 * Keyless TLS for stock JSSE: the handshake runs in the JVM's own SSLSocket / SSLEngine, the
 * private key stays in the handshaker keystore, and peer chains are judged by the service.
 *
 * <p>{@link dev.handshaker.client.keyless.KeylessClient} makes the service's KeyOperations and
 * CertificateValidator calls (Sign, Decrypt, GetCredential, ValidateChain), each with a deadline;
 * a gRPC failure is a {@link dev.handshaker.client.keyless.KeylessException} with its status
 * (NOT_FOUND, PERMISSION_DENIED, INVALID_ARGUMENT, UNAVAILABLE, DEADLINE_EXCEEDED).
 *
 * <pre>{@code
 * KeylessClient keys = KeylessClient.forAddress("127.0.0.1:50051");
 *
 * // A server: JSSE signs CertificateVerify / ServerKeyExchange (and, for TLS 1.2's RSA key
 * // exchange, decrypts the premaster secret) through the service.
 * SSLContext server = SSLContext.getInstance("TLS");
 * server.init(new KeyManager[] {KeylessKeyManager.of(keys, "web", "legacy")}, null, null);
 *
 * // A client: the server's chain and host name are checked by ValidateChain.
 * SSLContext client = SSLContext.getInstance("TLS");
 * client.init(null, new TrustManager[] {new KeylessTrustManager(keys, "default")}, null);
 * }</pre>
 *
 * <p>SSLSocket and SSLEngine alike: the key manager answers {@code chooseServerAlias} and
 * {@code chooseEngineServerAlias} (the credential the client's SNI names, read from the
 * handshake session), {@code chooseClientAlias} and {@code chooseEngineClientAlias}; the trust
 * manager's Socket and SSLEngine variants take the name to check from the connection (SNI, else
 * the peer host given to {@code createSSLEngine(host, port)}), so the stacks on SSLEngine
 * (Netty's SslHandler, Jetty, gRPC's Netty transport) need no endpoint identification set. JSSE
 * runs the keyless signature inside a delegated task ({@code NEED_TASK}), so it blocks whatever
 * thread runs that task, for up to the client's deadline: an event-loop stack should run
 * delegated tasks off its I/O threads (Netty: {@code SslHandler}'s delegatedTaskExecutor).
 *
 * <p>Many handshakes at once: {@code keys.pipelined()} is a client whose Sign and Decrypt share
 * one KeyOperations.Operate stream (a {@link dev.handshaker.client.keyless.KeylessPipeline})
 * instead of one unary call each; key managers and keys made with it use the stream:
 *
 * <pre>{@code
 * KeylessClient pipelined = keys.pipelined();  // close() it to end the stream
 * server.init(new KeyManager[] {KeylessKeyManager.of(pipelined, "web")}, null, null);
 * }</pre>
 *
 * <p>The pipeline numbers operations from a counter that never restarts, matches answers by id
 * in whatever order they come, keeps at most 64 on the stream (the service's per-stream limit;
 * the rest wait, and only while gRPC's flow control says the stream is ready are they written),
 * fails an operation past its deadline with DEADLINE_EXCEEDED (dropping its late answer), maps
 * an operation's error to a KeylessException with its status code and message, and fails every
 * waiting operation at once when the stream breaks (UNAVAILABLE when the service goes away); the
 * next call opens a new stream. A stream that goes silent without breaking (a paused service, a
 * dropped network path) only times its operations out: set {@code keepAliveTime} on the channel
 * to have gRPC notice such a connection. Each pipeline is one stream, and the service limits how
 * many one caller holds: share one pipelined client rather than making one per connection.
 *
 * <p>How JSSE reaches the keystore: {@link dev.handshaker.client.keyless.KeylessKeyManager}
 * hands JSSE {@link dev.handshaker.client.keyless.KeylessPrivateKey}s, and installs the {@link
 * dev.handshaker.client.keyless.KeylessProvider} at position 1 of the JVM's providers. JSSE
 * calls {@code Signature.getInstance(alg)} / {@code Cipher.getInstance("RSA/ECB/PKCS1Padding")}
 * without naming a provider, and the JCA then picks, when the key is known, the first provider
 * that accepts it: this one for keyless keys only, the stock providers for every other key.
 *
 * <p>Grants: the calling principal needs {@code sign} on each credential a key manager serves
 * ({@code handshaker keys allow web local --role sign}), {@code decrypt} on RSA credentials that
 * should do the TLS 1.2 RSA key exchange, and a trust manager's bundle must be open to it.
 *
 * <p>Key types: ECDSA (P-256, P-384), RSA (PKCS#1 v1.5 for TLS 1.2, PSS rsae for TLS 1.3) and
 * Ed25519 (the message is sent whole). Limits: RSASSA-PSS keys (rsa_pss_pss_*) are not keystore
 * key types; the alert JSSE sends when a trust manager refuses a chain is JSSE's choice
 * (certificate_unknown on Java 17), while {@link dev.handshaker.client.keyless.KeylessCertificateException#alert()} carries the
 * service's.
 */
package dev.handshaker.client.keyless;
