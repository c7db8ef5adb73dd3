from django.apps import AppConfig


class PatientPortalConfig(AppConfig):
    name = "portal.patient"
    label = "patientportal"
    verbose_name = "Patient portal"
