/**
 * A TCP port the kernel just handed out on `host` and released, for servers that cannot be
 * told to listen on port 0 and report the port they got (MariaDB, PostgreSQL, HAProxy), and
 * for a URL nothing listens on.
 */
import net from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
