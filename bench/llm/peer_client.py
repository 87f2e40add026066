"""Peer: the request loop of vLLM's `bench serve` for OpenAI completions
(backend_request_func.async_request_openai_completions, aiohttp, one shared session),
N streams at a fixed concurrency. Prints CPU seconds of this process and TTFT p50.
Usage: python3 peer_client.py URL N CONCURRENCY MAX_TOKENS"""
import asyncio, json, resource, sys, time
import aiohttp

url, n, conc, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

async def one(session, ttfts, fails):
    payload = {"model": "fast", "prompt": "a b c d e f g h", "max_tokens": max_tokens,
               "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}}
    st = time.perf_counter(); ttft = 0.0; most_recent = st; itl = []; out = None
    async with session.post(url + "/v1/completions", json=payload) as resp:
        if resp.status != 200:
            fails.append(resp.status); return
        async for chunk_bytes in resp.content:
            chunk_bytes = chunk_bytes.strip()
            if not chunk_bytes:
                continue
            chunk = chunk_bytes.decode("utf-8").removeprefix("data: ")
            if chunk != "[DONE]":
                data = json.loads(chunk)
                if choices := data.get("choices"):
                    ts = time.perf_counter()
                    if ttft == 0.0:
                        ttft = ts - st
                    else:
                        itl.append(ts - most_recent)
                    most_recent = ts
                elif usage := data.get("usage"):
                    out = usage.get("completion_tokens")
    ttfts.append(ttft)

async def main():
    ttfts, fails = [], []
    sem = asyncio.Semaphore(conc)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        async def guarded():
            async with sem:
                await one(session, ttfts, fails)
        t0 = time.perf_counter()
        await asyncio.gather(*(guarded() for _ in range(n)))
        wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_SELF)
    ttfts.sort()
    print(json.dumps({"cpu_s": ru.ru_utime + ru.ru_stime, "wall_s": wall, "ok": len(ttfts),
                      "failed": len(fails), "ttft_p50_ms": ttfts[len(ttfts) // 2] * 1e3}))

asyncio.run(main())
