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
