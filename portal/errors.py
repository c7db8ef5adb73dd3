"""Error pages that never show a stack trace and never depend on the database."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Forbidden.", "detail": {}}, status=403)
    return render(request, "errors/403.html", {"reason": str(exception or "")}, status=403)


def _api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Not found.", "detail": {}}, status=404)
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _api(request):
        return JsonResponse({"error": "Internal error.", "detail": {}}, status=500)
    # No request context: the failure may have been in the database or a context processor.
    return HttpResponse(loader.get_template("errors/500.html").render(), status=500)
