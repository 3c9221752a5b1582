package dev.handshaker.client.keyless;

import static org.junit.jupiter.api.Assertions.fail;

import dev.handshaker.client.ServeProcess;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyFactory;
import java.security.PrivateKey;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * A real `handshaker serve` for the keyless tests, over a keystore of its own whose credentials
 * the test issues with `handshaker keys generate` and grants with `keys allow NAME local --role
 * sign --role decrypt` (callers on loopback are the principal `local`). A second keystore's
 * development CA plays a CA that nobody trusts.
 */
final class KeylessService implements AutoCloseable {
  private final ServeProcess serve;
  private final Path keystore;
  private final Path foreign;

  private KeylessService(ServeProcess serve) {
    this.serve = serve;
    this.keystore = serve.root().resolve("keystore");
    this.foreign = serve.root().resolve("foreign-keystore");
  }

  /** A service binary from $HANDSHAKER_BIN (else the project venv), or the test class is aborted. */
  static KeylessService create() throws IOException {
    return new KeylessService(ServeProcess.create("handshaker-java-keyless-"));
  }

  /** `handshaker keys generate NAME --san ... --key-type TYPE` in this service's keystore. */
  void generate(String name, String keyType, String... sans) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("keys", "generate", name, "--key-type", keyType));
    for (String san : sans) {
      args.add("--san");
      args.add(san);
    }
    args.addAll(List.of("--keystore", keystore.toString()));
    run(args.toArray(new String[0]));
  }

  /** `handshaker keys allow NAME local --role R...`. */
  void allow(String name, String... roles) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("keys", "allow", name, "local"));
    for (String role : roles) {
      args.add("--role");
      args.add(role);
    }
    args.addAll(List.of("--keystore", keystore.toString()));
    run(args.toArray(new String[0]));
  }

  /** A credential from the foreign keystore: a CA this service does not trust issued it. */
  void generateForeign(String name, String... sans) throws IOException, InterruptedException {
    List<String> args = new ArrayList<>(List.of("keys", "generate", name));
    for (String san : sans) {
      args.add("--san");
      args.add(san);
    }
    args.addAll(List.of("--keystore", foreign.toString()));
    run(args.toArray(new String[0]));
  }

  void start() throws IOException, InterruptedException {
    serve.start(keystore);
  }

  /** Stops the service process (SIGSTOP): it reads and answers nothing until {@link #resume()}. */
  void pause() throws IOException, InterruptedException {
    serve.pause();
  }

  /** Lets a paused service run again (SIGCONT). */
  void resume() throws IOException, InterruptedException {
    serve.resume();
  }

  /** Kills the service process (SIGKILL, a paused one too): the kernel closes its connections at once. */
  void kill() throws InterruptedException {
    serve.kill();
  }

  /** Starts the service again after {@link #kill()}: the same address and keystore. */
  void restart() throws IOException, InterruptedException {
    serve.restart();
  }

  /**
   * Waits until GetCredential knows {@code name}: the service rereads the keystore each second, so
   * a credential issued while it runs appears within about that.
   */
  void awaitCredential(KeylessClient client, String name) throws InterruptedException {
    KeylessException last = null;
    for (int i = 0; i < 100; i++) {
      try {
        client.credential(name);
        return;
      } catch (KeylessException e) {
        last = e;
        Thread.sleep(100);
      }
    }
    fail("credential " + name + " did not appear: " + last);
  }

  String address() {
    return serve.address();
  }

  /** The development CA that issued this keystore's credentials (PEM file). */
  Path devCa() {
    return keystore.resolve("dev-ca/ca.crt");
  }

  Path foreignCertFile(String name) {
    return foreign.resolve(name).resolve("tls.crt");
  }

  Path foreignKeyFile(String name) {
    return foreign.resolve(name).resolve("tls.key");
  }

  X509Certificate[] foreignChain(String name) throws Exception {
    return certificates(foreignCertFile(name));
  }

  PrivateKey foreignKey(String name) throws Exception {
    String base64 = Files.readString(foreignKeyFile(name))
        .replace("-----BEGIN PRIVATE KEY-----", "")
        .replace("-----END PRIVATE KEY-----", "")
        .replaceAll("\\s", "");
    PKCS8EncodedKeySpec spec = new PKCS8EncodedKeySpec(Base64.getDecoder().decode(base64));
    try {
      return KeyFactory.getInstance("EC").generatePrivate(spec);
    } catch (InvalidKeySpecException notEc) {
      return KeyFactory.getInstance("RSA").generatePrivate(spec);
    }
  }

  static X509Certificate[] certificates(Path pem) throws Exception {
    return CertificateFactory.getInstance("X.509")
        .generateCertificates(new ByteArrayInputStream(Files.readAllBytes(pem)))
        .toArray(new X509Certificate[0]);
  }

  String log() {
    return serve.log();
  }

  private void run(String... args) throws IOException, InterruptedException {
    serve.run(args);
  }

  @Override
  public void close() throws IOException {
    serve.close();
  }
}
