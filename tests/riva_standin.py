"""STAND-IN for an NVIDIA Riva server, for tests and bench/asr_backends.py only.

A real Riva server cannot run here (it needs an NVIDIA GPU and NVIDIA's containers), so this is a gRPC server
on loopback that speaks Riva's real ASR protocol: the servicer base class and message types shipped in
nvidia-riva-client (`RivaSpeechRecognitionServicer`: Recognize, StreamingRecognize,
GetRivaSpeechRecognitionConfig), with faster-whisper on the embedded model doing the recognition. It behaves
as Riva does where the appliance depends on it: word offsets in int milliseconds and confidences, results
with `audio_processed`, streaming results marked final, Riva's error for a language no model serves
(INVALID_ARGUMENT "Unavailable model requested given these parameters: language_code=…"), and, with
`word_timings=False`, no words at all (as Riva's Whisper NIM answers). The message limit is the server's
own option, as on a real deployment.
"""

from __future__ import annotations

import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
import numpy as np
from riva.client.proto import riva_asr_pb2 as rasr
from riva.client.proto import riva_asr_pb2_grpc as rasr_srv

from appliance.ports import SAMPLE_RATE, TranscribeOptions, Transcriber


@dataclass(frozen=True)
class StandInOptions:
    languages: tuple[str, ...] = ("sv-SE",)
    word_timings: bool = True  # False: no words in the results (Riva's Whisper NIM)
    streaming: bool = True
    model_name: str = "standin-asr-sv"
    model_family: str = "riva-standin"  # "whisper" for a Whisper model (no word offsets on Riva)
    max_message_mb: int = 64  # gRPC's default is 4
    config_rpc: bool = True  # False: GetRivaSpeechRecognitionConfig is UNIMPLEMENTED (as on older Riva servers)


class RivaStandIn(rasr_srv.RivaSpeechRecognitionServicer):
    """Riva's ASR service over faster-whisper (STAND-IN: see the module docstring)."""

    def __init__(self, transcriber: Transcriber, options: StandInOptions | None = None) -> None:
        self.transcriber = transcriber
        self.options = options or StandInOptions()
        self.lock = threading.Lock()  # one transcription at a time, as one model instance
        self.requests: list[str] = []  # what was called ("recognize", "streaming", "config"), for assertions

    def GetRivaSpeechRecognitionConfig(self, request, context):  # noqa: N802 - Riva's method name
        self.requests.append("config")
        o = self.options
        if not o.config_rpc:
            return super().GetRivaSpeechRecognitionConfig(request, context)
        config = rasr.RivaSpeechRecognitionConfigResponse.Config(
            model_name=o.model_name,
            parameters={"language_code": ",".join(o.languages), "type": "online" if o.streaming else "offline",
                        "streaming": str(o.streaming), "offline": "True", "sample_rate": str(SAMPLE_RATE),
                        "model_family": o.model_family})
        if request.model_name and request.model_name != o.model_name:
            return rasr.RivaSpeechRecognitionConfigResponse()
        return rasr.RivaSpeechRecognitionConfigResponse(model_config=[config])

    def Recognize(self, request, context):  # noqa: N802
        self.requests.append("recognize")
        self._check(request.config, context, "offline")
        return rasr.RecognizeResponse(results=self._results(request.audio, request.config))

    def StreamingRecognize(self, request_iterator, context):  # noqa: N802
        self.requests.append("streaming")
        first = next(request_iterator)
        config = first.streaming_config.config
        self._check(config, context, "online")
        pcm = b"".join(r.audio_content for r in request_iterator)
        for result in self._results(pcm, config):
            yield rasr.StreamingRecognizeResponse(results=[rasr.StreamingRecognitionResult(
                alternatives=result.alternatives, is_final=True, audio_processed=result.audio_processed,
                channel_tag=result.channel_tag)])

    def _check(self, config, context, kind: str) -> None:
        o = self.options
        unavailable = (config.language_code not in o.languages or (kind == "online" and not o.streaming)
                       or (config.model and config.model != o.model_name))
        if unavailable:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"Error: Unavailable model requested given these parameters: "
                          f"language_code={config.language_code}; sample_rate={config.sample_rate_hertz}; "
                          f"type={kind};")

    def _results(self, pcm: bytes, config) -> list:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        options = TranscribeOptions(language=config.language_code.split("-")[0], word_timestamps=True)
        with self.lock:
            _info, segments = self.transcriber.transcribe(audio, options)
            segments = list(segments)
        results = []
        for seg in segments:
            words = [rasr.WordInfo(start_time=round(w.start * 1000), end_time=round(w.end * 1000), word=w.word.strip(),
                                   confidence=w.probability or 0.0)
                     for w in seg.words] if self.options.word_timings and config.enable_word_time_offsets else []
            alt = rasr.SpeechRecognitionAlternative(transcript=seg.text.strip() + " ", confidence=1.0, words=words)
            results.append(rasr.SpeechRecognitionResult(alternatives=[alt], channel_tag=1,
                                                        audio_processed=float(seg.end)))
        return results


class StandInServer:
    """The running stand-in: `stop()` ends the gRPC server and joins its worker threads."""

    def __init__(self, server: grpc.Server, pool: futures.ThreadPoolExecutor) -> None:
        self._server, self._pool = server, pool

    def stop(self, grace: float | None = 0) -> None:
        self._server.stop(grace).wait()
        self._pool.shutdown(wait=True)  # no thread that ran the model outlives the server


def serve(standin: RivaStandIn, host: str = "127.0.0.1") -> tuple[StandInServer, int]:
    """Start the stand-in on a free loopback port; returns the server (call .stop()) and the port."""
    limit = standin.options.max_message_mb * 1024 * 1024
    pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="riva-standin")
    server = grpc.server(pool, options=[("grpc.max_receive_message_length", limit),
                                        ("grpc.max_send_message_length", limit)])
    rasr_srv.add_RivaSpeechRecognitionServicer_to_server(standin, server)
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    return StandInServer(server, pool), port
