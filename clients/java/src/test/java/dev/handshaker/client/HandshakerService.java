package dev.handshaker.client;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A real handshaker service for one test class: `handshaker serve` on a free loopback port over a
 * fresh keystore holding the credentials "localhost" (DNS:localhost, IP:127.0.0.1, the default)
 * and "client" (DNS:client), both issued by the keystore's development CA.
 */
final class HandshakerService implements AutoCloseable {
  private final ServeProcess serve;
  private final Path keystore;

  private HandshakerService(ServeProcess serve, String... serveArgs)
      throws IOException, InterruptedException {
    this.serve = serve;
    this.keystore = serve.root().resolve("keystore");
    // Callers on loopback are the principal `local`; the policy grants it both credentials
    // and the dev-ca trust bundle.
    run("keys", "generate", "localhost", "--san", "DNS:localhost", "--san", "IP:127.0.0.1",
        "--default", "--allow", "local", "--keystore", keystore.toString());
    run("keys", "generate", "client", "--san", "DNS:client", "--allow", "local",
        "--keystore", keystore.toString());
    run("keys", "allow", "dev-ca", "local", "--trust-bundle", "--keystore", keystore.toString());
    serve.start(keystore, serveArgs);
  }

  /**
   * Starts the service with {@code serveArgs} added to `handshaker serve`, or aborts the test
   * class when the handshaker binary is missing.
   */
  static HandshakerService start(String... serveArgs) throws IOException, InterruptedException {
    ServeProcess serve = ServeProcess.create("handshaker-java-");
    try {
      return new HandshakerService(serve, serveArgs);
    } catch (IOException | InterruptedException | RuntimeException | Error e) {
      serve.close();
      throw e;
    }
  }

  /** The gRPC address of the service, host:port. */
  String address() {
    return serve.address();
  }

  Path keystore() {
    return keystore;
  }

  /** The development CA certificate (PEM) that issued every credential in the keystore. */
  String devCaPem() throws IOException {
    return Files.readString(keystore.resolve("dev-ca/ca.crt"));
  }

  Path credentialDir(String name) {
    return keystore.resolve(name);
  }

  /** The certificate of a development CA of another keystore: trusts none of ours. */
  String foreignCaPem() throws IOException, InterruptedException {
    Path other = serve.root().resolve("other-keystore");
    // `keys ca` refuses a keystore that does not exist; `keys generate` makes one, CA first.
    if (!Files.isDirectory(other)) {
      run("keys", "generate", "foreign", "--san", "DNS:foreign.test", "--keystore", other.toString());
    }
    return run("keys", "ca", "--keystore", other.toString());
  }

  /**
   * Issues one more credential from the development CA ({@code keys generate NAME ARGS...}, usable
   * by `local`) and restarts the service so that it serves it.
   */
  void addCredential(String name, String... args) throws IOException, InterruptedException {
    List<String> generate = new ArrayList<>(List.of("keys", "generate", name));
    generate.addAll(List.of(args));
    generate.addAll(List.of("--allow", "local", "--keystore", keystore.toString()));
    run(generate.toArray(new String[0]));
    kill();
    restart();
  }

  ClientConfig.Builder client() {
    return ClientConfig.builder().serviceAddress(address());
  }

  ServerConfig.Builder server() {
    return ServerConfig.builder().serviceAddress(address());
  }

  private String run(String... args) throws IOException, InterruptedException {
    return serve.run(args);
  }

  /** Stops the service process (SIGSTOP): it answers nothing until {@link #resume()}. */
  void pause() throws IOException, InterruptedException {
    serve.pause();
  }

  /** Lets a paused service run again (SIGCONT). */
  void resume() throws IOException, InterruptedException {
    serve.resume();
  }

  /** Kills the service process (SIGKILL): its connections break at once. */
  void kill() throws InterruptedException {
    serve.kill();
  }

  /** Starts the service again, on the same address with the same keystore, after {@link #kill()}. */
  void restart() throws IOException, InterruptedException {
    serve.restart();
  }

  /** The service's log so far, for failure messages. */
  String log() {
    return serve.log();
  }

  @Override
  public void close() throws IOException {
    serve.close();
  }
}
