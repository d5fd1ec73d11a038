// Fastify: the request-id plugin and the reader plugin.
import Fastify from 'fastify';
import * as fasten from 'fasten';

async function main(): Promise<void> {
  const f = fasten.create({ serviceId: 'users', nodeId: 'node-1', auditDsn: 'sqlite:///users.db', stdout: 'none' });
  f.register('iam', { USER_READ: { category: 'user', action: 'read' } });
  const app = Fastify();
  await app.register(f.fastify);
  await app.register(f.reader.fastify({ tokensFromEnv: true }), { prefix: '/api/v1/logs' });
  app.get<{ Params: { id: string } }>('/users/:id', async (req) => {
    f.log.info({ userId: req.params.id }, 'user_read');
    const row: fasten.Row = await f.emitDurable({ code: 'USER_READ', target: `user/${req.params.id}` });
    return { requestId: fasten.currentRequestId(), seq: row.monotonic_seq };
  });
  await app.listen({ port: 3001, host: '127.0.0.1' });
}

main().catch((e: unknown) => {
  if (e instanceof fasten.FastenError) console.error(`${e.kind}: ${e.message}`);
  process.exit(1);
});
