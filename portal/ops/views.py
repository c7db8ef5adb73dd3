from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz_view(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: the process answers; touches no database."""
    return HttpResponse("ok\n", content_type="text/plain")
