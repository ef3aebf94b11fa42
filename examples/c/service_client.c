/* The dashboard example over the network from C: hiredis against `state serve`.
 *
 *     service_client SOCKET_PATH
 *
 * On the Unix socket the peer's user name is the client (no token needed). */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>

static redisReply *cmd(redisContext *c, const char *fmt, const char *arg) {
    redisReply *r = redisCommand(c, fmt, arg);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "service_client: %s\n", r ? r->str : c->errstr);
        exit(1);
    }
    return r;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
        return 2;
    }
    redisContext *c = redisConnectUnix(argv[1]);
    if (c == NULL || c->err) {
        fprintf(stderr, "service_client: cannot connect to %s: %s\n", argv[1], c ? c->errstr : "out of memory");
        return 1;
    }
    freeReplyObject(cmd(c, "SET layout %s", "{\"cols\":2}"));
    redisReply *r = cmd(c, "GET layout%s", "");
    printf("c/hiredis: layout=%s\n", r->str);
    freeReplyObject(r);
    r = cmd(c, "INCR visits%s", "");
    printf("c/hiredis: visits=%lld\n", r->integer);
    freeReplyObject(r);
    redisFree(c);
    return 0;
}
